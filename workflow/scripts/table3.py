from meddap.report.tables import table3
from meddap.run import jobs

jobs.main(snakemake, table3)  # noqa: F821
