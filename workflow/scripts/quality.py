from meddap.run import jobs
from meddap.synth.quality import quality_job

jobs.run(snakemake, quality_job)  # noqa: F821
