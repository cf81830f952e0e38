from meddap.run import launch

launch.main(snakemake, "meddap.report.seg_tables:seg_ratio_table")  # noqa: F821
