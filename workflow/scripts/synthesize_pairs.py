from meddap.pairs.synthesis import synthesize_pairs
from meddap.run import jobs

jobs.main(snakemake, synthesize_pairs)  # noqa: F821
