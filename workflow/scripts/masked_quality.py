from meddap.run import jobs
from meddap.masked.quality import masked_quality

jobs.run(snakemake, masked_quality)  # noqa: F821
