from meddap.multitask.evaluate import multitask_metrics
from meddap.run import jobs

jobs.main(snakemake, multitask_metrics)  # noqa: F821
