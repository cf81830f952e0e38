from meddap.run import launch

launch.main(snakemake, "meddap.data.fingerprint:fingerprint_source")  # noqa: F821
