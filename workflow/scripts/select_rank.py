from meddap import jobs
from meddap.rank_selection import select_rank

jobs.run(snakemake, select_rank)  # noqa: F821
