from meddap.run import launch

launch.main(snakemake, "meddap.pairs.synthesis:synthesize_pairs")  # noqa: F821
