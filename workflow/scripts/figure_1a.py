from meddap.run import launch

launch.main(snakemake, "meddap.report.figures:figure_1a")  # noqa: F821
