from meddap.run import jobs
from meddap.synth.generate import synthesize

jobs.run(snakemake, synthesize)  # noqa: F821
