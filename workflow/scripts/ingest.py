from meddap.run import launch

launch.main(snakemake, "meddap.data.ingest:ingest")  # noqa: F821
