from meddap import jobs
from meddap.gradcam import gradcam_figure

jobs.run(snakemake, gradcam_figure)  # noqa: F821
