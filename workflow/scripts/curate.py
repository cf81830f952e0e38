from meddap.data.curation import curate
from meddap.run import jobs

jobs.main(snakemake, curate)  # noqa: F821
