from meddap.run import jobs
from meddap.synth.rank import select_rank

jobs.main(snakemake, select_rank)  # noqa: F821
