from meddap.lora.released import import_lora
from meddap.run import jobs

jobs.main(snakemake, import_lora)  # noqa: F821
