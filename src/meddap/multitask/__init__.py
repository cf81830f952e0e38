"""Multi-task segmentation and classification (MTL): oversampling, refining, metrics."""
