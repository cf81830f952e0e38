from meddap.run import launch

launch.main(snakemake, "meddap.report.pairs_figures:clinical_figure")  # noqa: F821
