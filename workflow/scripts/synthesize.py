from meddap.run import jobs
from meddap.synth.generate import synthesize

jobs.main(snakemake, synthesize)  # noqa: F821
