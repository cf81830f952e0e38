"""Mask-conditioned image-mask pairs (ClinicalPrior, DiffBoost): clinical-prior masks, prompts."""
