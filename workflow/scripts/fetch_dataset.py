from meddap import jobs
from meddap.download import fetch_dataset

jobs.run(snakemake, fetch_dataset)  # noqa: F821
