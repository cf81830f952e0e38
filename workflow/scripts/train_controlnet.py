from meddap.pairs.finetune import train_fold_controlnet
from meddap.run import jobs

jobs.main(snakemake, train_fold_controlnet)  # noqa: F821
