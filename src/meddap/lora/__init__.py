"""USLoRA stage: the per-fold latent/text cache, LoRA training, parameter counts."""
