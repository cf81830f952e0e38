from meddap.run import launch

launch.main(snakemake, "meddap.report.cross_domain:cross_domain_table")  # noqa: F821
