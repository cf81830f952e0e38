from meddap.run import launch

launch.main(snakemake, "meddap.lora.cache:encode_fold")  # noqa: F821
