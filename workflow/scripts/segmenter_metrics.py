from meddap.run import launch

launch.main(snakemake, "meddap.seg.summary:segmenter_metrics")  # noqa: F821
