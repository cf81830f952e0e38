from meddap.report.gradcam import gradcam_figure
from meddap.run import jobs

jobs.main(snakemake, gradcam_figure)  # noqa: F821
