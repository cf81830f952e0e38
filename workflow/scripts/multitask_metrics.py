from meddap.run import launch

launch.main(snakemake, "meddap.multitask.evaluate:multitask_metrics")  # noqa: F821
