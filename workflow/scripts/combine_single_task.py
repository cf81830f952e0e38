from meddap.run import launch

launch.main(snakemake, "meddap.multitask.predictions:combine_predictions")  # noqa: F821
