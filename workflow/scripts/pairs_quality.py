from meddap.run import launch

launch.main(snakemake, "meddap.pairs.quality:pairs_quality")  # noqa: F821
