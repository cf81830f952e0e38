from meddap import jobs
from meddap.curation import find_duplicates_job

jobs.run(snakemake, find_duplicates_job)  # noqa: F821
