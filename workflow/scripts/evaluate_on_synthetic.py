from meddap import jobs
from meddap.synthetic_eval import evaluate_on_synthetic

jobs.run(snakemake, evaluate_on_synthetic)  # noqa: F821
