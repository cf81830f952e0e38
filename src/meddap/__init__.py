"""meddap: generative augmentation of breast-ultrasound datasets (MEDDAP and neighbours)."""

from meddap.common import monai_import

__version__ = "0.1.0"

monai_import.install()  # a job that imports MONAI skips its unused transformers/torchvision
