from meddap import jobs
from meddap.synthesis import synthesize

jobs.run(snakemake, synthesize)  # noqa: F821
