from meddap.run import jobs
from meddap.seg.train import train_segmenter

jobs.run(snakemake, train_segmenter)  # noqa: F821
