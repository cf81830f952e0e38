"""Multi-task segmentation and classification (seed 004): oversampling, refining, metrics."""
