from meddap.run import launch

launch.main(snakemake, "meddap.report.run_summary:run_summary")  # noqa: F821
