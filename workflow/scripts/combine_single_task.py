from meddap.multitask.predictions import combine_predictions
from meddap.run import jobs

jobs.main(snakemake, combine_predictions)  # noqa: F821
