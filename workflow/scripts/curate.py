from meddap.run import launch

launch.main(snakemake, "meddap.data.curation:curate")  # noqa: F821
