from meddap.report.gradcam import gradcam_figure
from meddap.run import jobs

jobs.run(snakemake, gradcam_figure)  # noqa: F821
