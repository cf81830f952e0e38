from meddap.run import launch

launch.main(snakemake, "meddap.report.multitask_tables:multitask_table")  # noqa: F821
