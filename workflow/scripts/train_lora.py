from meddap.run import launch

launch.main(snakemake, "meddap.lora.train:train_lora")  # noqa: F821
