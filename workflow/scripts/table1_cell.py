from meddap.run import launch

launch.main(snakemake, "meddap.report.tables:cell")  # noqa: F821
