from meddap.run import launch

launch.main(snakemake, "meddap.report.gradcam:gradcam_figure")  # noqa: F821
