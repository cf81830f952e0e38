from meddap.run import launch

launch.main(snakemake, "meddap.multitask.predictions:refine_predictions")  # noqa: F821
