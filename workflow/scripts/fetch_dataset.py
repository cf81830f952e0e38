from meddap.data.download import fetch_dataset
from meddap.run import jobs

jobs.run(snakemake, fetch_dataset)  # noqa: F821
