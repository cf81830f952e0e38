"""What every stage shares: path patterns, typed settings, split rows, images, training."""
