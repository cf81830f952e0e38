from meddap import jobs
from meddap.figures import sample_grid

jobs.run(snakemake, sample_grid)  # noqa: F821
