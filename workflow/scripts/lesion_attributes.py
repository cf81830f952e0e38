from meddap.run import jobs
from meddap.masked.finetune import lesion_attributes_job

jobs.run(snakemake, lesion_attributes_job)  # noqa: F821
