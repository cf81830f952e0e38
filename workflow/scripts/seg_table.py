from meddap.report.seg_tables import seg_table
from meddap.run import jobs

jobs.main(snakemake, seg_table)  # noqa: F821
