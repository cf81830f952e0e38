from meddap.run import launch

launch.main(snakemake, "meddap.report.seg_figures:contour_figure")  # noqa: F821
