from meddap.report.tables import table3
from meddap.run import jobs

jobs.run(snakemake, table3)  # noqa: F821
