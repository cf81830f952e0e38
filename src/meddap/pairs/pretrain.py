"""Pretraining the embedded ControlNet on the phantom corpus, beside the embedded generator.

`meddap pretrain-controlnet` generates the corpus that `meddap pretrain-base` trains on (the
same shards, `meddap.diffusion.corpus`), keeps its lesion images (benign, malignant) with the
union of their masks, and trains a ControlNet (`meddap.pairs.controlnet`) on the frozen base
model: scaled VAE posterior means of each image (and its mirror image), the class prompt
without adjectives, and the mask or edge conditioning image. The folder (fp16 safetensors, as
`ControlNetModel.save_pretrained` writes it) is written atomically with `BUILD_RECORD`: the
command, the settings, the base model's digest, the code version, the final loss and the sha256
of every other file. Deterministic on CPU at a fixed thread count; it takes no resumable checkpoints
(a one-off command; the workflow's per-fold fine-tuning does).

Heavy imports (torch, diffusers) wait for the run, so that the CLI reads the defaults here fast.
"""

from __future__ import annotations

import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from meddap.common.errors import MeddapError
from meddap.diffusion.pretrain_config import DEFAULT_OUTPUT as BASE_MODEL
from meddap.diffusion.pretrain_config import PretrainConfig

if TYPE_CHECKING:
    import torch
    from diffusers import ControlNetModel, StableDiffusionPipeline

DEFAULT_OUTPUT = "resources/tiny-controlnet-phantom"
CONDITIONS = ("mask", "edge")  # those of meddap.pairs.controlnet (a test keeps them equal)
LESION_CLASSES = ("benign", "malignant")


@dataclass(frozen=True)
class ControlNetPretrainConfig:
    """Corpus and optimisation of one ControlNet pretraining (the record stores all)."""

    condition: str = "mask"
    patients: int = PretrainConfig().patients  # the corpus of pretrain-base by default
    render_size: int = PretrainConfig().render_size
    resolution: int = 64  # px it trains at: the tiny base model's native size
    steps: int = 3000
    batch_size: int = 16
    learning_rate: float = 1e-3  # 1e-4 gave a higher final loss (0.1297 vs 0.1278)
    flip: bool = True  # also train on every image mirrored, with its mirrored conditioning
    seed: int = 0
    threads: int = 2  # torch CPU threads: the bytes depend on it (the record keeps it)

    def check(self) -> None:
        """Stop on a setting the training cannot honour."""
        if self.condition not in CONDITIONS:
            raise MeddapError(
                f"ControlNet condition {self.condition!r} is not one of {', '.join(CONDITIONS)}"
            )
        for key in ("patients", "steps", "batch_size", "threads"):
            if getattr(self, key) < 1:
                raise MeddapError(f"ControlNet pretraining setting {key} must be at least 1")
        if self.resolution < 8:
            raise MeddapError("ControlNet pretraining setting resolution must be at least 8")
        if self.render_size < 32:
            raise MeddapError("ControlNet pretraining setting render_size must be at least 32")
        if not self.learning_rate > 0:
            raise MeddapError("ControlNet pretraining setting learning_rate must be positive")


def _check_folders(base_model: str | Path, output: str | Path) -> Path:
    """The base model's folder; stops when it is missing or would be overwritten."""
    base = Path(base_model)
    if not (base / "model_index.json").is_file():
        raise MeddapError(
            f"base model {base} is not a diffusers folder with model_index.json: build it "
            "with `meddap pretrain-base` or pass --base-model"
        )
    if Path(output).resolve() == base.resolve():
        raise MeddapError(f"the ControlNet output {output} would overwrite its base model")
    return base


def lesion_set(
    folders: list[Path], resolution: int, condition: str
) -> tuple[torch.Tensor, list[str], torch.Tensor]:
    """The corpus' lesion images (N, 3, R, R) in [-1, 1], their labels and conditioning images.

    Images are read as the corpus reads them (`load_image`), masks as ingestion merges them
    (`merged_mask` over the BUSI layout's items); the edge condition sees the stored image.
    Phantom images are square, so the image's centre crop and the mask's resize agree.
    """
    import numpy as np
    import torch

    from meddap.common.images import open_gray
    from meddap.data.ingest import merged_mask
    from meddap.data.layouts import LAYOUTS
    from meddap.diffusion.corpus import corpus_images
    from meddap.diffusion.latents import load_image
    from meddap.pairs.controlnet import conditioning_image

    busi = LAYOUTS.get("busi", "layout")
    items = {item.image.resolve(): item for f in folders for item in busi.items(f)}
    found = [(path, label) for path, label in corpus_images(folders) if label in LESION_CLASSES]
    if not found:
        raise MeddapError("the phantom corpus has no lesion images: raise --patients")
    images, conds = [], []
    for path, _ in found:
        images.append(load_image(str(path), resolution))
        with open_gray(path) as gray:
            pixels = np.asarray(gray)
        mask = merged_mask(items[path.resolve()], (pixels.shape[1], pixels.shape[0]))
        conds.append(conditioning_image(mask, pixels, condition, resolution))
    return torch.stack(images), [label for _, label in found], torch.stack(conds)


def encode(
    pipe: StableDiffusionPipeline, images: torch.Tensor, prompts: list[str]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Scaled VAE posterior means of `images` and the text embeddings of `prompts` (row-wise)."""
    import torch

    from meddap.diffusion.latents import posterior

    texts = sorted(set(prompts))
    with torch.no_grad():
        embeds = pipe.encode_prompt(texts, pipe.device, 1, False)[0]
    rows = torch.tensor([texts.index(text) for text in prompts])
    return posterior(pipe.vae, images)[0], embeds[rows].contiguous()


def _train(
    config: ControlNetPretrainConfig, base: Path
) -> tuple[ControlNetModel, list[float], list[str], float]:
    """Generate the corpus, encode it and train; the ControlNet, losses, labels, s per step."""
    import torch

    from meddap.common.runtime import deterministic
    from meddap.diffusion.corpus import generate_corpus
    from meddap.diffusion.pipeline import load_pipeline
    from meddap.diffusion.prompts import prompt
    from meddap.pairs.controlnet import build_controlnet, train_controlnet

    with tempfile.TemporaryDirectory() as tmp, deterministic(torch.device("cpu")):
        pipe = load_pipeline(str(base))
        pipe.set_progress_bar_config(disable=True)
        resolution = config.resolution
        if resolution % pipe.vae_scale_factor:
            raise MeddapError(
                f"ControlNet pretraining resolution {resolution} is not a multiple of the VAE "
                f"factor {pipe.vae_scale_factor} of base model {base}"
            )
        folders = generate_corpus(tmp, patients=config.patients, render_size=config.render_size)
        images, labels, conds = lesion_set(folders, resolution, config.condition)
        if config.flip:
            images, conds = torch.cat([images, images.flip(-1)]), torch.cat([conds, conds.flip(-1)])
        prompts = [prompt(label) for label in labels] * (2 if config.flip else 1)
        latents, texts = encode(pipe, images, prompts)
        controlnet = build_controlnet(pipe.unet, pipe.vae_scale_factor, seed=config.seed)
    started = time.perf_counter()
    losses = train_controlnet(
        pipe,
        controlnet,
        latents,
        texts,
        conds,
        steps=config.steps,
        batch_size=config.batch_size,
        learning_rate=config.learning_rate,
        seed=config.seed,
    )
    return controlnet, losses, labels, (time.perf_counter() - started) / config.steps


def _write(output: str | Path, controlnet: ControlNetModel, record: dict[str, Any]) -> None:
    """The ControlNet folder (fp16 safetensors) and its build record, atomically."""
    from meddap.common.atomic import atomic_dir, write_json
    from meddap.common.hashing import tree_hashes
    from meddap.diffusion.pipeline import BUILD_RECORD

    with atomic_dir(output) as tmp:
        controlnet.half().save_pretrained(tmp, safe_serialization=True)
        write_json({**record, "files": tree_hashes(tmp)}, tmp / BUILD_RECORD)


def pretrain_controlnet(
    *,
    base_model: str | Path = BASE_MODEL,
    output: str | Path = DEFAULT_OUTPUT,
    config: ControlNetPretrainConfig = ControlNetPretrainConfig(),  # noqa: B008 (frozen)
    command: str = "",
) -> dict[str, Any]:
    """Pretrain a ControlNet on the frozen local `base_model` and write it to folder `output`.

    Returns the final loss (mean of the last `LOSS_WINDOW` steps), the number of lesion
    images, the wall time and the seconds per training step.
    """
    config.check()
    base = _check_folders(base_model, output)

    import torch

    from meddap.common.hashing import path_sha256
    from meddap.diffusion.corpus import SHARDS
    from meddap.diffusion.pretrain import LOSS_WINDOW
    from meddap.run.provenance import code_version, package_versions

    started, code, threads = time.perf_counter(), code_version(), torch.get_num_threads()
    torch.set_num_threads(config.threads)
    try:
        controlnet, losses, labels, per_step = _train(config, base)
    finally:
        torch.set_num_threads(threads)
    tail = losses[-LOSS_WINDOW:]
    loss = sum(tail) / len(tail)
    record = {
        "command": command,
        "config": asdict(config),
        "base_model": {"path": str(base_model), "sha256": path_sha256(base)},
        "corpus": {
            "shards": [asdict(shard) for shard in SHARDS],
            "images": len(labels),
            "classes": dict(sorted(Counter(labels).items())),
        },
        "code": code,
        "packages": package_versions(),
        "final_loss": loss,
    }
    _write(output, controlnet, record)
    seconds = time.perf_counter() - started
    return {"loss": loss, "images": len(labels), "seconds": seconds, "seconds_per_step": per_step}
