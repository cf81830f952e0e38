from meddap.data.ingest import ingest
from meddap.run import jobs

jobs.run(snakemake, ingest)  # noqa: F821
