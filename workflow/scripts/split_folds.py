from meddap.run import launch

launch.main(snakemake, "meddap.data.folds:split_folds")  # noqa: F821
