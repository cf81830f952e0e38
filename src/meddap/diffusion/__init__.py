"""Stable Diffusion: pipeline loading, the embedded tiny model, MEDDAP prompts."""
