from meddap.report.seg_tables import seg_ratio_table
from meddap.run import jobs

jobs.run(snakemake, seg_ratio_table)  # noqa: F821
