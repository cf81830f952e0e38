from meddap import jobs
from meddap.tiny_sd import build_tiny_sd

jobs.run(snakemake, build_tiny_sd)  # noqa: F821
