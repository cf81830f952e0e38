from meddap import jobs
from meddap.ingest import ingest

jobs.run(snakemake, ingest)  # noqa: F821
