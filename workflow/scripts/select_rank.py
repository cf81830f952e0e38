from meddap.run import launch

launch.main(snakemake, "meddap.synth.rank:select_rank")  # noqa: F821
