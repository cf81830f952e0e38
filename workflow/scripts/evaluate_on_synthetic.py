from meddap.cls.evaluate import evaluate_on_synthetic
from meddap.run import jobs

jobs.main(snakemake, evaluate_on_synthetic)  # noqa: F821
