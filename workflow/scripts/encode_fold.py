from meddap import jobs
from meddap.lora_cache import encode_fold

jobs.run(snakemake, encode_fold)  # noqa: F821
