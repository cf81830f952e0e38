from meddap.report.seg_tables import seg_ablation
from meddap.run import jobs

jobs.main(snakemake, seg_ablation)  # noqa: F821
