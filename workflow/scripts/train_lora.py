from meddap.lora.train import train_lora
from meddap.run import jobs

jobs.main(snakemake, train_lora)  # noqa: F821
