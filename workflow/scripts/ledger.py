from meddap import jobs
from meddap.ledger import write_ledger

jobs.run(snakemake, write_ledger)  # noqa: F821
