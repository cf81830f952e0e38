from meddap.report.tables import cell
from meddap.run import jobs

jobs.run(snakemake, cell)  # noqa: F821
