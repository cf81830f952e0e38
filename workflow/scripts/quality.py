from meddap.run import launch

launch.main(snakemake, "meddap.synth.quality:quality_job")  # noqa: F821
