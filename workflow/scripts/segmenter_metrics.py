from meddap.run import jobs
from meddap.seg.summary import segmenter_metrics

jobs.run(snakemake, segmenter_metrics)  # noqa: F821
