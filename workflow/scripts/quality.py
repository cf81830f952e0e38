from meddap.run import jobs
from meddap.synth.quality import quality_job

jobs.main(snakemake, quality_job)  # noqa: F821
