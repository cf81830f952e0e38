from meddap.lora.train import train_lora
from meddap.run import jobs

jobs.run(snakemake, train_lora)  # noqa: F821
