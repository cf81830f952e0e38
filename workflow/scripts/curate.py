from meddap import jobs
from meddap.curation import curate

jobs.run(snakemake, curate)  # noqa: F821
