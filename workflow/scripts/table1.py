from meddap.run import launch

launch.main(snakemake, "meddap.report.tables:table1")  # noqa: F821
