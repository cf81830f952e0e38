from meddap.report.figures import figure_1a
from meddap.run import jobs

jobs.main(snakemake, figure_1a)  # noqa: F821
