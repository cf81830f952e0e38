from meddap.data.ingest import ingest
from meddap.run import jobs

jobs.main(snakemake, ingest)  # noqa: F821
