from meddap.run import launch

launch.main(snakemake, "meddap.cls.evaluate:evaluate_on_synthetic")  # noqa: F821
