from meddap import jobs
from meddap.quality import quality_job

jobs.run(snakemake, quality_job)  # noqa: F821
