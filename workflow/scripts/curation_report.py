from meddap.run import launch

launch.main(snakemake, "meddap.report.curation:curation_report")  # noqa: F821
