"""meddap: generative augmentation of breast-ultrasound datasets (MEDDAP and neighbours)."""

__version__ = "0.1.0"
