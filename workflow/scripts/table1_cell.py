from meddap.report.tables import cell
from meddap.run import jobs

jobs.main(snakemake, cell)  # noqa: F821
