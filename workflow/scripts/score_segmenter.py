from meddap.run import launch

launch.main(snakemake, "meddap.seg.evaluate:score_segmenter")  # noqa: F821
