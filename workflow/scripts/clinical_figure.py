from meddap.report.pairs_figures import clinical_figure
from meddap.run import jobs

jobs.run(snakemake, clinical_figure)  # noqa: F821
