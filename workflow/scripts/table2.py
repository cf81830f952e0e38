from meddap.report.tables import table2
from meddap.run import jobs

jobs.main(snakemake, table2)  # noqa: F821
