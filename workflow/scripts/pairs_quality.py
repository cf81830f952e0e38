from meddap.pairs.quality import pairs_quality
from meddap.run import jobs

jobs.main(snakemake, pairs_quality)  # noqa: F821
