from meddap import jobs
from meddap.folds import split_folds

jobs.run(snakemake, split_folds)  # noqa: F821
