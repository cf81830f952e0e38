from meddap.report.seg_figures import contour_figure
from meddap.run import jobs

jobs.run(snakemake, contour_figure)  # noqa: F821
