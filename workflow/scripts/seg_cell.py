from meddap.report.seg_tables import seg_cell
from meddap.run import jobs

jobs.main(snakemake, seg_cell)  # noqa: F821
