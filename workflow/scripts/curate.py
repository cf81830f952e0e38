from meddap.data.curation import curate
from meddap.run import jobs

jobs.run(snakemake, curate)  # noqa: F821
