"""Mask-conditioned synthesis per (fold, setting): one nested pool of image-mask pairs.

A setting is `{condition}-{source}` (`meddap.trainsets.pairs`). The pool holds `pool` x n images for
the fold's n train lesions, in an order whose prefixes are the ratios (1:k = the first k x n):

- `real` masks: image i conditions on train lesion i mod n (sorted by id), its parent, with the
  parent's label and prompt, so every prefix of k x n holds each mask k times (DiffBoost's
  variants, pixel-aligned with the parent's centre crop);
- `clinical` masks: labels follow the train split's class mix in every prefix; each mask is a
  ClinicalPrior ellipse (`meddap.pairs.clinical`) of a size bin drawn uniformly (bins are
  terciles of the fold's measured lesions, so this draws from their size distribution), and
  the prompt is that of a train lesion of the class drawn at random (`attributes_from`).

Condition `text` (ClinicalPrior's text-only ablation) makes the plan of condition `mask` (same
masks, prompts, parents and seeds) but samples the plain base model with the prompt alone; its
conditions folder records the mask image the ControlNet would have had, and its manifest's
controlnet_sha256 is null.

Every image has its own seed. Masks and conditioning images are written at once, images one
batch at a time in hidden partial folders, so a killed job resumes at its first missing batch.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image
from tqdm import tqdm

from meddap.common.atomic import write_parquet, write_png
from meddap.common.errors import MeddapError
from meddap.common.hashing import path_sha256
from meddap.common.seeds import derive_seed
from meddap.common.settings import PairSynthesis, Sampling
from meddap.pairs.clinical import SIZES, clinical_mask, lesion_sizes
from meddap.pairs.controlnet import EdgeDetector, conditioning_image, load_edge_detector
from meddap.pairs.finetune import prompts_of, read_pair, train_lesions
from meddap.synth.generate import (
    check_negative_prompt,
    class_sequence,
    image_name,
    pending_batches,
    publish,
    render,
    to_gray,
)
from meddap.trainsets.pairs import TEXT, check_setting

log = logging.getLogger(__name__)
FOLDERS = ("images", "masks", "conditions")


def _real_plan(rows: pd.DataFrame, prompts: list[str], total: int) -> pd.DataFrame:
    """Rows of a real-mask pool: parent i mod n, its label and prompt."""
    parent = np.arange(total) % len(rows)
    return pd.DataFrame(
        {
            "label": rows["label"].to_numpy()[parent],
            "prompt": np.asarray(prompts)[parent],
            "parent_id": rows["id"].to_numpy()[parent],
            "variant": np.arange(total) // len(rows),
        }
    )


def _clinical_plan(rows: pd.DataFrame, prompts: list[str], total: int, seed: int) -> pd.DataFrame:
    """Rows of a clinical-mask pool: class mix of the train split, a size bin, a prompt donor."""
    labels = class_sequence(rows["label"].value_counts().to_dict(), total)
    sizes, donors = [], []
    for i, label in enumerate(labels):
        rng = np.random.default_rng(derive_seed(seed, "clinical-plan", i))
        sizes.append(SIZES[rng.integers(len(SIZES))])
        donors.append(rng.choice(np.flatnonzero(rows["label"].to_numpy() == label)))
    return pd.DataFrame(
        {
            "label": labels,
            "prompt": np.asarray(prompts)[donors],
            "parent_id": None,
            "size": sizes,
            "attributes_from": rows["id"].to_numpy()[donors],
        }
    )


def plan(
    rows: pd.DataFrame, prompts: list[str], setting: str, pool: int, fold: int, seed: int
) -> pd.DataFrame:
    """One row per pair of the setting's pool: index, label, prompt, mask source, parent, seed."""
    if pool < 1:
        raise MeddapError(f"config key segmentation.pairs.pool must be at least 1, got {pool}")
    condition, source = check_setting(setting)
    planned = f"mask-{source}" if condition == TEXT else setting  # text: the mask setting's plan
    total, base = pool * len(rows), derive_seed(seed, "masked", fold, planned)
    table = (
        _real_plan(rows, prompts, total)
        if source == "real"
        else _clinical_plan(rows, prompts, total, base)
    )
    seeds = [derive_seed(base, i) for i in range(total)]
    return table.assign(index=range(total), mask_source=source, seed=seeds)


def _conditions(
    plan_rows: pd.DataFrame,
    rows: pd.DataFrame,
    condition: str,
    size: int,
    how: PairSynthesis,
    detector: EdgeDetector | None = None,
) -> tuple[list[np.ndarray], torch.Tensor]:
    """Per plan row, its lesion mask (bool, size x size) and conditioning image (3, size, size).

    Real masks are cropped and resized with their parent image (`conditioning_image`), so an
    edge condition shows the parent's own edges; clinical masks are drawn at `size`.
    """
    pairs = {row.id: read_pair(row) for row in rows.itertuples()}
    if plan_rows["mask_source"].iloc[0] == "real":
        parents = [pairs[p] for p in plan_rows["parent_id"]]
        masks = [conditioning_image(m, None, "mask", size)[0].numpy() > 0 for _, m in parents]
        conds = [conditioning_image(m, im, condition, size, detector) for im, m in parents]
        return masks, torch.stack(conds)
    measured = [conditioning_image(m, None, "mask", size)[0].numpy() for _, m in pairs.values()]
    sizes, prior = lesion_sizes(measured), how.clinical
    masks = [
        clinical_mask(r.label, r.size, (size, size), sizes, prior.sigma, prior.alpha, r.seed)
        for r in plan_rows.itertuples()
    ]
    return masks, torch.stack([conditioning_image(m, None, condition, size) for m in masks])


def _write_pairs(
    masks: list[np.ndarray], conds: torch.Tensor, indices: pd.Series, image_size: int, out: dict
) -> None:
    """Each mask at `image_size` (nearest, 0/255) and each conditioning image as RGB PNGs."""
    for index, mask, cond in zip(indices, masks, conds, strict=True):
        lesion = Image.fromarray(mask.astype(np.uint8) * 255)
        resized = lesion.resize((image_size, image_size), Image.Resampling.NEAREST)
        write_png(np.asarray(resized), out["masks"] / image_name(index))
        rgb = (cond.permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
        write_png(rgb, out["conditions"] / image_name(index))


def _pipeline(base_model: str, controlnet: str, scheduler: str):  # noqa: ANN202
    """The base model with the configured scheduler and the fold's ControlNet (none: "")."""
    from diffusers import ControlNetModel

    from meddap.pairs.controlnet import controlnet_pipeline
    from meddap.synth.generate import load_generator

    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.float16 if device == "cuda" else torch.float32
    pipe = load_generator(base_model, None, scheduler, device)
    if not controlnet:
        return pipe
    return controlnet_pipeline(pipe, ControlNetModel.from_pretrained(controlnet, torch_dtype=dtype))


def _render(
    pipe,  # noqa: ANN001
    batch: pd.DataFrame,
    conds: torch.Tensor,
    sampling: Sampling,
) -> list[np.ndarray]:
    """One batch as grayscale uint8 images at the sampling resolution, each from its own seed:
    conditioned on its rows' conditioning images, or (a plain pipeline: text) the prompt alone."""
    from diffusers import StableDiffusionControlNetPipeline

    from meddap.pairs.controlnet import generate

    if not isinstance(pipe, StableDiffusionControlNetPipeline):
        return [to_gray(image, sampling.resolution) for image in render(pipe, batch, sampling)]
    return generate(
        pipe,
        list(batch["prompt"]),
        conds[batch["index"].to_numpy()],
        list(batch["seed"]),
        sampling.steps,
        sampling.guidance_scale,
        sampling.negative_prompt,
    )


def synthesize_pairs(
    *,
    base_model: str,
    controlnet: str | list[str],
    manifest: str,
    splits: str,
    attributes: str,
    images: str,
    masks: str,
    conditions: str,
    synth_manifest: str,
    fold: int,
    setting: str,
    pairs_synthesis: PairSynthesis,
    seed: int,
    edge_model: str | list[str] = "",
) -> None:
    """Job: the setting's pool of image-mask pairs for fold `fold`, and its manifest.

    `controlnet` is "" or [] (Snakemake's empty named input) for a text setting; `edge_model`
    likewise unless an edge setting's edges come from one (`load_edge_detector`; else Canny).
    """
    condition, _ = check_setting(setting)
    controlnet = str(controlnet) if controlnet else ""
    if (condition == TEXT) == bool(controlnet):
        raise MeddapError(
            f"synthesis setting {setting!r} "
            + ("samples without a ControlNet" if condition == TEXT else "needs its ControlNet")
            + f", but the job got controlnet {controlnet!r}"
        )
    how, sampling = pairs_synthesis, pairs_synthesis.sampling
    rows = train_lesions(manifest, splits, fold)
    prompts = prompts_of(rows, attributes, how.prompts)
    table = plan(rows, prompts, setting, how.pool, fold, seed)
    pipe = _pipeline(base_model, controlnet, sampling.scheduler)
    check_negative_prompt(pipe.tokenizer, sampling, "segmentation.pairs")
    out = {
        name: Path(path) for name, path in zip(FOLDERS, (images, masks, conditions), strict=True)
    }
    partial = {name: p.with_name(f".{name}.partial") for name, p in out.items()}
    for folder in partial.values():
        folder.mkdir(parents=True, exist_ok=True)
    recorded = "mask" if condition == TEXT else condition  # text: the mask it was meant to follow
    detector = load_edge_detector(str(edge_model) if edge_model else "")
    drawn, conds = _conditions(table, rows, recorded, sampling.resolution, how, detector)
    _write_pairs(drawn, conds, table["index"], sampling.image_size, partial)
    pending = pending_batches(table, partial["images"], sampling.batch_size)
    started = time.perf_counter()
    for batch in tqdm(pending, desc=f"fold{fold} {setting}", unit="batch"):
        rendered = _render(pipe, batch, conds, sampling)
        for index, image in zip(batch["index"], rendered, strict=True):
            resized = Image.fromarray(image).resize((sampling.image_size,) * 2, Image.BICUBIC)
            write_png(np.asarray(resized), partial["images"] / image_name(index))
    done = sum(len(b) for b in pending)
    seconds = max(time.perf_counter() - started, 1e-9)
    log.info("generated %d pairs in %.1f s (%.2f images/s)", done, seconds, done / seconds)
    for name in FOLDERS:
        publish(partial[name], out[name])
    write_parquet(_manifest(table, out, fold, setting, controlnet), synth_manifest)


def _manifest(
    table: pd.DataFrame, out: dict[str, Path], fold: int, setting: str, controlnet: str
) -> pd.DataFrame:
    """The pool's manifest: the plan plus ids, file paths and what made it."""
    names = [image_name(i) for i in table["index"]]
    files = {
        f"{key}_path": [str(out[folder].resolve() / n) for n in names]
        for key, folder in (("image", "images"), ("mask", "masks"), ("condition", "conditions"))
    }
    ids = [f"syn-f{fold}-{setting}-{i:06d}" for i in table["index"]]
    digest = path_sha256(Path(controlnet)) if controlnet else None  # text: no ControlNet
    extra = {"fold": fold, "setting": setting, "controlnet_sha256": digest}
    return table.assign(id=ids, **files, **extra)
