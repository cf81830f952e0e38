from meddap.diffusion.tiny import build_tiny_sd_job
from meddap.run import jobs

jobs.main(snakemake, build_tiny_sd_job)  # noqa: F821
