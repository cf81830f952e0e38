from meddap.run import launch

launch.main(snakemake, "meddap.data.curation:find_duplicates_job")  # noqa: F821
