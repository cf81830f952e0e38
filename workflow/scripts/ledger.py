from meddap.run import jobs
from meddap.run.ledger import write_ledger

jobs.main(snakemake, write_ledger)  # noqa: F821
