from meddap import jobs
from meddap.tables import cell

jobs.run(snakemake, cell)  # noqa: F821
