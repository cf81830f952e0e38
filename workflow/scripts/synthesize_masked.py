from meddap.run import jobs
from meddap.masked.synthesis import synthesize_masked

jobs.run(snakemake, synthesize_masked)  # noqa: F821
