"""Settings of `meddap pretrain-base` (no heavy imports: the CLI reads its defaults here)."""

from __future__ import annotations

from dataclasses import dataclass

from meddap.common.errors import MeddapError

DEFAULT_OUTPUT = "resources/tiny-sd-phantom"
DEFAULT_CHECKPOINTS = "results/pretrain-base"


@dataclass(frozen=True)
class PretrainConfig:
    """Corpus, architecture and optimisation of one pretraining (the record stores all)."""

    patients: int = 200
    render_size: int = 128
    image_size: int = 64
    vae_steps: int = 1000
    unet_steps: int = 8000
    batch_size: int = 16
    vae_crop: int = 32  # the fully convolutional VAE trains on random crops of this side
    vae_learning_rate: float = 1e-3
    unet_learning_rate: float = 5e-4
    warmup_steps: int = 100
    kl_weight: float = 1e-6
    noise_offset: float = 0.1  # diffusers' --noise_offset, for the UNet phase
    adjective_share: float = 0.75
    uncond_share: float = 0.1
    vae_channels: tuple[int, ...] = (16, 32, 64)
    unet_channels: tuple[int, ...] = (32, 64, 128)
    unet_heads: int = 2
    text_width: int = 64
    checkpoint_every: int = 500
    seed: int = 0
    threads: int = 2  # torch CPU threads: the bytes depend on it (the record keeps it)

    def check(self) -> None:
        """Stop on a setting the training cannot honour."""
        for key in (
            "patients",
            "vae_steps",
            "unet_steps",
            "batch_size",
            "checkpoint_every",
            "threads",
        ):
            if getattr(self, key) < 1:
                raise MeddapError(f"pretraining setting {key} must be at least 1")
        factor = 2 ** (len(self.vae_channels) - 1)
        if self.image_size % (factor * 2 ** (len(self.unet_channels) - 1)):
            raise MeddapError(
                f"pretraining image_size {self.image_size} must be a multiple of the VAE and "
                "UNet downsampling factors"
            )
        if not factor <= self.vae_crop <= self.image_size or self.vae_crop % factor:
            raise MeddapError(
                f"pretraining vae_crop {self.vae_crop} must be a multiple of {factor} "
                f"and at most image_size {self.image_size}"
            )
