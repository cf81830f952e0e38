from meddap.pairs.finetune import lesion_attributes_job
from meddap.run import jobs

jobs.main(snakemake, lesion_attributes_job)  # noqa: F821
