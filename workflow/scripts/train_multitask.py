from meddap.run import launch

launch.main(snakemake, "meddap.multitask.train:train_multitask")  # noqa: F821
