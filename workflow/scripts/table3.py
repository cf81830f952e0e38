from meddap.run import launch

launch.main(snakemake, "meddap.report.tables:table3")  # noqa: F821
