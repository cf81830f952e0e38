from meddap.report.figures import sample_grid
from meddap.run import jobs

jobs.main(snakemake, sample_grid)  # noqa: F821
