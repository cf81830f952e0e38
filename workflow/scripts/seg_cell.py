from meddap.report.seg_tables import seg_cell
from meddap.run import jobs

jobs.run(snakemake, seg_cell)  # noqa: F821
