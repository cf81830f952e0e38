from meddap.masked.synthesis import synthesize_masked
from meddap.run import jobs

jobs.run(snakemake, synthesize_masked)  # noqa: F821
