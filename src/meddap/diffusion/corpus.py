"""The phantom pretraining corpus of the embedded generator, with measured captions.

Four phantom shards with their own seeds and acquisition settings, each unlike the grid's
`phantom` (no shift) and `phantom_external` (gain 1.3, speckle 1.5, depth attenuation 1.5,
frequency 0.7) in every key, so that the corpus shares no image with a dataset the grid trains
or tests on and LoRA still has a domain gap to close. Captions follow the MEDDAP template; an
image qualifies for an adjective when its own statistics put it in the corpus' outer quartile
(`ADJECTIVE_RULES`), and training draws the caption anew at every step (`draw_captions`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from meddap.common.labels import CLASSES
from meddap.data.phantom import generate_phantom
from meddap.diffusion.latents import load_image
from meddap.diffusion.prompts import prompt


@dataclass(frozen=True)
class Shard:
    """One phantom dataset of the corpus: its seed and acquisition shift."""

    seed: int
    shift: dict[str, float]


SHARDS = (
    Shard(1001, {"gain": 0.6, "speckle": 1.2, "depth_attenuation": 0.6, "frequency": 1.25}),
    Shard(1002, {"gain": 1.6, "speckle": 0.8, "depth_attenuation": 1.25, "frequency": 0.85}),
    Shard(1003, {"gain": 0.8, "speckle": 0.7, "depth_attenuation": 1.2, "frequency": 1.15}),
    Shard(1004, {"gain": 1.2, "speckle": 1.3, "depth_attenuation": 0.8, "frequency": 0.9}),
)
QUANTILE = 0.25
# adjective: (statistic, side); "high" = at or above the corpus' 1 - QUANTILE quantile of the
# statistic, "low" = at or below its QUANTILE quantile. Statistics of the [0, 1] grey image.
ADJECTIVE_RULES = {
    "bright": ("mean", "high"),
    "dark": ("mean", "low"),
    "high-contrast": ("std", "high"),
    "low-contrast": ("std", "low"),
}


@dataclass
class Corpus:
    """Images (N, 3, R, R) in [-1, 1], their class labels and qualifying adjectives."""

    images: torch.Tensor
    labels: list[str]
    adjectives: list[tuple[str, ...]]

    def __len__(self) -> int:
        return len(self.labels)


def generate_corpus(root: str | Path, *, patients: int, render_size: int) -> list[Path]:
    """Write the shards (`patients` in all, at `render_size` px) below `root`; their folders."""
    folders = []
    for index, shard in enumerate(SHARDS):
        folder = Path(root) / f"shard{index}"
        generate_phantom(
            folder,
            patients=max(1, patients // len(SHARDS)),
            image_size=render_size,
            duplicates=0,
            conflicting=0,
            second_mask_fraction=0.1,
            seed=shard.seed,
            shift=shard.shift,
        )
        folders.append(folder)
    return folders


def corpus_images(folders: list[Path]) -> list[tuple[Path, str]]:
    """Every image of the shard folders (no masks) with its class, in a fixed order."""
    return [
        (path, label)
        for folder in folders
        for label in CLASSES
        for path in sorted((folder / label).glob("*).png"))
    ]


def measured_adjectives(gray: np.ndarray) -> list[tuple[str, ...]]:
    """The adjectives of `ADJECTIVE_RULES` each grey image (N, H, W) in [0, 1] qualifies for."""
    stats = {"mean": gray.mean(axis=(1, 2)), "std": gray.std(axis=(1, 2))}
    qualifies = {}
    for adjective, (stat, side) in ADJECTIVE_RULES.items():
        values = stats[stat]
        if side == "high":
            qualifies[adjective] = values >= np.quantile(values, 1 - QUANTILE)
        else:
            qualifies[adjective] = values <= np.quantile(values, QUANTILE)
    return [tuple(a for a in ADJECTIVE_RULES if qualifies[a][i]) for i in range(len(gray))]


def load_corpus(folders: list[Path], resolution: int) -> Corpus:
    """The shards' images at `resolution` px, as the LoRA cache reads images, with adjectives."""
    found = corpus_images(folders)
    images = torch.stack([load_image(str(path), resolution) for path, _ in found])
    gray = ((images[:, 0] + 1) / 2).numpy().astype(np.float64)
    return Corpus(images.contiguous(), [label for _, label in found], measured_adjectives(gray))


def draw_captions(
    corpus: Corpus,
    index: torch.Tensor,
    generator: torch.Generator,
    *,
    adjective_share: float,
    uncond_share: float,
) -> list[str]:
    """One caption per image: '' with probability `uncond_share` (for classifier-free guidance),
    else one of its adjectives with probability `adjective_share` (when it has any), else none."""
    draws = torch.rand(len(index), generator=generator).tolist()
    picks = torch.randint(0, len(ADJECTIVE_RULES), (len(index),), generator=generator).tolist()
    captions = []
    for i, u, pick in zip(index.tolist(), draws, picks, strict=True):
        own = corpus.adjectives[i]
        if u < uncond_share:
            captions.append("")
        elif u < uncond_share + adjective_share and own:
            captions.append(prompt(corpus.labels[i], own[pick % len(own)]))
        else:
            captions.append(prompt(corpus.labels[i]))
    return captions
