from meddap.run import launch

launch.main(snakemake, "meddap.pairs.finetune:lesion_attributes_job")  # noqa: F821
