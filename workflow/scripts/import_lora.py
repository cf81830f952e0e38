from meddap.run import launch

launch.main(snakemake, "meddap.lora.released:import_lora")  # noqa: F821
