from meddap.report.tables import table1
from meddap.run import jobs

jobs.main(snakemake, table1)  # noqa: F821
