from meddap.run import jobs
from meddap.run.ledger import write_ledger

jobs.run(snakemake, write_ledger)  # noqa: F821
