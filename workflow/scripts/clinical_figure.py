from meddap.report.pairs_figures import clinical_figure
from meddap.run import jobs

jobs.main(snakemake, clinical_figure)  # noqa: F821
