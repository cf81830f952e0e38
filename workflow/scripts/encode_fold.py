from meddap.lora.cache import encode_fold
from meddap.run import jobs

jobs.main(snakemake, encode_fold)  # noqa: F821
