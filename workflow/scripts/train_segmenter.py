from meddap.run import launch

launch.main(snakemake, "meddap.seg.train:train_segmenter")  # noqa: F821
