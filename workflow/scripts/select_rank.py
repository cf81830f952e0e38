from meddap.run import jobs
from meddap.synth.rank import select_rank

jobs.run(snakemake, select_rank)  # noqa: F821
