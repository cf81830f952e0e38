from meddap.multitask.predictions import refine_predictions
from meddap.run import jobs

jobs.main(snakemake, refine_predictions)  # noqa: F821
