from meddap.report.seg_tables import seg_ratio_table
from meddap.run import jobs

jobs.main(snakemake, seg_ratio_table)  # noqa: F821
