from meddap.data.folds import split_folds
from meddap.run import jobs

jobs.main(snakemake, split_folds)  # noqa: F821
