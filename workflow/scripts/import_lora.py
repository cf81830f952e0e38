from meddap.lora.released import import_lora
from meddap.run import jobs

jobs.run(snakemake, import_lora)  # noqa: F821
