from meddap.report.multitask_tables import multitask_table
from meddap.run import jobs

jobs.main(snakemake, multitask_table)  # noqa: F821
