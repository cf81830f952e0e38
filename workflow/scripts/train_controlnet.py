from meddap.run import launch

launch.main(snakemake, "meddap.pairs.finetune:train_fold_controlnet")  # noqa: F821
