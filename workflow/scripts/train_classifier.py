from meddap import jobs
from meddap.classify import train_classifier

jobs.run(snakemake, train_classifier)  # noqa: F821
