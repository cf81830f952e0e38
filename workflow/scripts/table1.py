from meddap import jobs
from meddap.tables import table1

jobs.run(snakemake, table1)  # noqa: F821
