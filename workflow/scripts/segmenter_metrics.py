from meddap.run import jobs
from meddap.seg.evaluate import segmenter_metrics

jobs.run(snakemake, segmenter_metrics)  # noqa: F821
