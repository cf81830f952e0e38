from meddap.report.figures import figure_1a
from meddap.run import jobs

jobs.run(snakemake, figure_1a)  # noqa: F821
