from meddap.run import launch

launch.main(snakemake, "meddap.data.download:fetch_dataset")  # noqa: F821
