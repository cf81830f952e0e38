"""Segmenters: MONAI networks trained per fold, model and training set, scored per image."""
