from meddap.cls.train import train_classifier
from meddap.run import jobs

jobs.main(snakemake, train_classifier)  # noqa: F821
