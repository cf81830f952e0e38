from meddap.masked.quality import masked_quality
from meddap.run import jobs

jobs.run(snakemake, masked_quality)  # noqa: F821
