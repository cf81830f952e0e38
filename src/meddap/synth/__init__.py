"""Synthesis stage: nested synthetic sets, their quality, the per-fold rank choice."""
