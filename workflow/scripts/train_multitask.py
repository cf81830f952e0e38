from meddap.multitask.train import train_multitask
from meddap.run import jobs

jobs.main(snakemake, train_multitask)  # noqa: F821
