"""Synthesis per (fold, rank, adjective): one nested set whose prefixes are the ratios."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image
from tqdm import tqdm

from meddap.common.atomic import atomic_dir, write_parquet, write_png
from meddap.common.hashing import path_sha256
from meddap.common.seeds import derive_seed
from meddap.common.settings import Sampling, Synthesis
from meddap.common.splits import split_rows
from meddap.diffusion.prompts import check_prompt_lengths, prompt
from meddap.trainsets.text import prefix_size

log = logging.getLogger(__name__)
SCHEDULERS = {
    "dpm_multistep": "DPMSolverMultistepScheduler",
    "pndm": "PNDMScheduler",
    "ddim": "DDIMScheduler",
    "euler": "EulerDiscreteScheduler",
}


def class_sequence(counts: dict[str, int], total: int) -> list[str]:
    """`total` labels ordered so that every prefix follows the proportions of `counts`.

    At each position the class furthest below its target share comes next (ties: name order),
    so the 50% set is the first half of the 100% set and both keep the train split's mix.
    """
    n = sum(counts.values())
    taken = dict.fromkeys(sorted(counts), 0)
    order = []
    for i in range(1, total + 1):
        deficit = {c: counts[c] * i / n - taken[c] for c in taken}
        label = max(taken, key=lambda c: (deficit[c], -sorted(taken).index(c)))
        taken[label] += 1
        order.append(label)
    return order


def plan(
    train_labels: pd.Series, pool: int, seed: int, fold: int, rank: int | str, adjective: str
) -> pd.DataFrame:
    """One row per image of a `pool`% synthetic set: index, label, prompt, seed."""
    total = prefix_size(len(train_labels), pool)
    labels = class_sequence(train_labels.value_counts().to_dict(), total)
    return pd.DataFrame(
        {
            "index": range(total),
            "label": labels,
            "prompt": [prompt(label, adjective) for label in labels],
            "seed": [derive_seed(seed, fold, rank, adjective, i) for i in range(total)],
        }
    )


def train_labels(manifest: str, splits: str, fold: int) -> pd.Series:
    """Labels of the fold's train split (the set whose size and mix the synthesis follows)."""
    return split_rows(manifest, splits, fold, "train", columns=("label",))["label"]


def load_generator(base_model: str, lora: str | None, scheduler: str, device: str):  # noqa: ANN201
    """The base pipeline with the fold's LoRA (none for rank 0; a folder: a fully fine-tuned
    UNet in place of the base one) and the configured scheduler."""
    import diffusers

    from meddap.diffusion.pipeline import load_pipeline

    dtype = torch.float16 if device == "cuda" else torch.float32
    pipe = load_pipeline(base_model, dtype=dtype, device=device)
    pipe.scheduler = getattr(diffusers, SCHEDULERS[scheduler]).from_config(pipe.scheduler.config)
    if lora and Path(lora).is_dir():
        pipe.unet = diffusers.UNet2DConditionModel.from_pretrained(lora, torch_dtype=dtype).to(
            device
        )
    elif lora:
        pipe.load_lora_weights(str(Path(lora).parent), weight_name=Path(lora).name)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def check_negative_prompt(tokenizer, sampling: Sampling, section: str) -> None:  # noqa: ANN001
    """Stop if `{section}.sampling.negative_prompt` is longer than the text encoder takes."""
    if sampling.negative_prompt:
        key = f"config key '{section}.sampling.negative_prompt'"
        check_prompt_lengths(tokenizer, [sampling.negative_prompt], key)


def render(pipe, rows: pd.DataFrame, sampling: Sampling) -> np.ndarray:  # noqa: ANN001
    """Sample one batch, each image from its own seed's noise: (B, H, W, 3) in [0, 1]."""
    generators = [torch.Generator("cpu").manual_seed(int(s)) for s in rows.seed]
    negative = [sampling.negative_prompt] * len(rows) if sampling.negative_prompt else None
    out = pipe(
        list(rows.prompt),
        negative_prompt=negative,
        num_inference_steps=sampling.steps,
        guidance_scale=sampling.guidance_scale,
        height=sampling.resolution,
        width=sampling.resolution,
        generator=generators,
        output_type="np",
    )
    return out.images


def to_gray(image: np.ndarray, size: int) -> np.ndarray:
    """A sampled RGB image in [0, 1] as a uint8 grayscale array of `size` x `size`."""
    rgb = Image.fromarray(np.clip(image * 255 + 0.5, 0, 255).astype(np.uint8))
    return np.asarray(rgb.convert("L").resize((size, size), Image.Resampling.BICUBIC))


def image_name(index: int) -> str:
    """File name of synthetic image `index`."""
    return f"{index:06d}.png"


def pending_batches(rows: pd.DataFrame, partial: Path, batch_size: int) -> list[pd.DataFrame]:
    """Fixed batches of `batch_size` rows whose images are not all in `partial` yet (resume).

    Files of a killed writer (temporary names) are removed first.
    """
    names = {image_name(i) for i in rows["index"]}
    for stray in [p for p in partial.iterdir() if p.name not in names]:
        stray.unlink()
    batches = [rows.iloc[i : i + batch_size] for i in range(0, len(rows), batch_size)]
    pending = [
        b for b in batches if not all((partial / image_name(i)).exists() for i in b["index"])
    ]
    if len(pending) < len(batches):
        log.info(
            "resumed: %d of %d batches already in %s",
            len(batches) - len(pending),
            len(batches),
            partial,
        )
    return pending


def synthesize(
    *,
    manifest: str,
    splits: str,
    lora: str | list[str],
    images: str,
    synth_manifest: str,
    base_model: str,
    fold: int,
    rank: int | str,
    adjective: str,
    synthesis: Synthesis,
    seed: int,
) -> None:
    """Generate `pool`% of the fold's train size, class mix kept in every prefix (each ratio).

    `lora` is the fold's LoRA weights file, or empty for rank 0 (the base model alone), or for
    rank "full" the fully fine-tuned UNet folder. Images
    land one batch at a time in a hidden partial folder beside `images`, so a killed job resumes
    at its first missing batch; the folder becomes `images` only when complete.
    """
    how = synthesis.sampling
    rows = plan(train_labels(manifest, splits, fold), synthesis.pool, seed, fold, rank, adjective)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    pipe = load_generator(base_model, lora, how.scheduler, device)
    check_prompt_lengths(pipe.tokenizer, rows.prompt.unique(), "config key 'synthesis.adjectives'")
    check_negative_prompt(pipe.tokenizer, how, "synthesis")
    partial = Path(images).with_name(".images.partial")
    partial.mkdir(parents=True, exist_ok=True)
    pending = pending_batches(rows, partial, how.batch_size)
    started = time.perf_counter()
    for batch in tqdm(pending, desc=f"fold{fold} r{rank} {adjective}", unit="batch"):
        for index, image in zip(batch["index"], render(pipe, batch, how), strict=True):
            write_png(to_gray(image, how.image_size), partial / image_name(index))
    seconds = max(time.perf_counter() - started, 1e-9)
    done = sum(len(b) for b in pending)
    log.info("generated %d images in %.1f s (%.2f images/s)", done, seconds, done / seconds)
    publish(partial, Path(images))
    table = rows.assign(
        id=[f"syn-f{fold}-r{rank}-{adjective}-{i:06d}" for i in rows["index"]],
        image_path=[str(Path(images).resolve() / image_name(i)) for i in rows["index"]],
        adjective=adjective,
        rank=rank,
        fold=fold,
        base_model=base_model,
        lora_sha256=path_sha256(lora) if lora else None,
    )
    write_parquet(table, synth_manifest)


def publish(partial: Path, images: Path) -> None:
    """Move the completed partial folder to `images` in one rename."""
    with atomic_dir(images) as tmp:
        tmp.rmdir()
        partial.rename(tmp)
