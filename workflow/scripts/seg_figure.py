from meddap.report.seg_figures import contour_figure
from meddap.run import jobs

jobs.main(snakemake, contour_figure)  # noqa: F821
