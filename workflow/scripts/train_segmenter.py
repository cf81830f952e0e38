from meddap.run import jobs
from meddap.seg.train import train_segmenter

jobs.main(snakemake, train_segmenter)  # noqa: F821
