from meddap.run import jobs
from meddap.seg.evaluate import score_segmenter

jobs.main(snakemake, score_segmenter)  # noqa: F821
