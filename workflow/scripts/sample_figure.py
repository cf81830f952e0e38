from meddap.run import launch

launch.main(snakemake, "meddap.report.figures:sample_grid")  # noqa: F821
