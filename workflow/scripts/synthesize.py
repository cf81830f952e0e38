from meddap.run import launch

launch.main(snakemake, "meddap.synth.generate:synthesize")  # noqa: F821
