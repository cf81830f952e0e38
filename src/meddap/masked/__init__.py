"""The mask-conditioned synthesis stage: clinical-prior masks and prompts (seeds 001, 002)."""
