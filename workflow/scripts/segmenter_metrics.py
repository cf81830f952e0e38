from meddap.run import jobs
from meddap.seg.summary import segmenter_metrics

jobs.main(snakemake, segmenter_metrics)  # noqa: F821
