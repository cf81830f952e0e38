from meddap import jobs
from meddap.lora_train import train_lora

jobs.run(snakemake, train_lora)  # noqa: F821
