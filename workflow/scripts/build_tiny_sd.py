from meddap.diffusion.tiny import build_tiny_sd
from meddap.run import jobs

jobs.run(snakemake, build_tiny_sd)  # noqa: F821
