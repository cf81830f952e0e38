from meddap.run import jobs
from meddap.masked.finetune import train_fold_controlnet

jobs.run(snakemake, train_fold_controlnet)  # noqa: F821
