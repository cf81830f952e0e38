from meddap.data.curation import find_duplicates_job
from meddap.run import jobs

jobs.main(snakemake, find_duplicates_job)  # noqa: F821
