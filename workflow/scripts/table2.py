from meddap.run import launch

launch.main(snakemake, "meddap.report.tables:table2")  # noqa: F821
