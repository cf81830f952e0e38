from meddap.run import launch

launch.main(snakemake, "meddap.cls.train:train_classifier")  # noqa: F821
