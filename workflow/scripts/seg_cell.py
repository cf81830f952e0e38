from meddap.run import launch

launch.main(snakemake, "meddap.report.seg_tables:seg_cell")  # noqa: F821
