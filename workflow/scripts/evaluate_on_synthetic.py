from meddap.cls.evaluate import evaluate_on_synthetic
from meddap.run import jobs

jobs.run(snakemake, evaluate_on_synthetic)  # noqa: F821
