from meddap import jobs
from meddap.synthetic_eval import figure_1a

jobs.run(snakemake, figure_1a)  # noqa: F821
