from meddap.run import launch

launch.main(snakemake, "meddap.diffusion.tiny:build_tiny_sd_job")  # noqa: F821
