from meddap import jobs
from meddap.tables import table2

jobs.run(snakemake, table2)  # noqa: F821
