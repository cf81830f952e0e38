from meddap.report.multitask_tables import multitask_cell
from meddap.run import jobs

jobs.main(snakemake, multitask_cell)  # noqa: F821
