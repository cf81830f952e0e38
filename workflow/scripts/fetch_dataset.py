from meddap.data.download import fetch_dataset
from meddap.run import jobs

jobs.main(snakemake, fetch_dataset)  # noqa: F821
