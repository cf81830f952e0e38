from meddap import jobs
from meddap.tables import table3

jobs.run(snakemake, table3)  # noqa: F821
