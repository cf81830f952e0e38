"""Per-fold jobs before mask-conditioned synthesis: the attribute table and the ControlNet.

`lesion_attributes_job` derives ClinicalPrior's prompt attributes of each train lesion of a fold
(`meddap.pairs.attributes`, thresholds at the fold's medians, grey levels at the stored
resolution) into a table. `train_fold_controlnet` fine-tunes a ControlNet (the configured
pretrained one, or a fresh copy of the base UNet's encoder) at the pools' sampling resolution
(`segmentation.pairs.sampling.resolution`) on that fold's train lesion images,
their conditioning images and prompts (attribute or class prompts). Both read the train split
only and stop when a table lists an id outside it, as the LoRA cache does. The fine-tuning saves
its state in checkpoint.pt beside the ControlNet folder every `checkpoint_every` steps and
resumes from it (`meddap.diffusion.training.StepLoop`); the file is removed once the outputs are
written.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from meddap.common.atomic import atomic_dir, write_parquet
from meddap.common.checkpoint import Checkpoint, fingerprint
from meddap.common.errors import MeddapError
from meddap.common.hashing import file_sha256
from meddap.common.images import open_gray
from meddap.common.settings import ControlNetFit
from meddap.diffusion.prompts import prompt
from meddap.pairs.attributes import attribute_prompt, lesion_attributes, median_thresholds
from meddap.seg.data import MASK_THRESHOLD, fold_rows

PROMPTS = ("attributes", "class")


def train_lesions(manifest: str, splits: str, fold: int) -> pd.DataFrame:
    """The fold's train lesion rows (id, label, image_path, mask_path), sorted by id."""
    return fold_rows(manifest, splits, fold, "train", "lesions")


def read_pair(row: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """A row's grayscale image and its binary mask at the stored resolution."""
    with open_gray(row.image_path) as gray:
        image = np.asarray(gray)
    with open_gray(row.mask_path) as gray:
        mask = np.asarray(gray.resize(image.shape[::-1])) > MASK_THRESHOLD
    return image, mask


def lesion_attributes_job(*, manifest: str, splits: str, table: str, fold: int) -> None:
    """Job: echogenicity, boundary and the attribute prompt of every train lesion of a fold."""
    rows = train_lesions(manifest, splits, fold)
    pairs = [read_pair(row) for row in rows.itertuples()]
    thresholds = median_thresholds([p[0] for p in pairs], [p[1] for p in pairs])
    found = pd.DataFrame([lesion_attributes(image, mask, thresholds) for image, mask in pairs])
    words = zip(rows["label"], found["echogenicity"], found["boundary"], strict=True)
    out = rows[["id", "label"]].assign(**found, fold=fold)
    out["prompt"] = [attribute_prompt(*w) for w in words]
    out = out.assign(**{f"threshold_{k}": v for k, v in thresholds.items()})
    write_parquet(out, table)


def prompts_of(rows: pd.DataFrame, attributes: str, kind: str) -> list[str]:
    """One prompt per row: its attribute prompt from the table at `attributes`, or the class one.

    Stops when the table lacks a row's id or lists an id the rows (the train split) do not hold.
    """
    if kind not in PROMPTS:
        raise MeddapError(f"config key segmentation.pairs.prompts: {kind!r} is not {PROMPTS}")
    if kind == "class":
        return [prompt(label) for label in rows["label"]]
    table = pd.read_parquet(attributes).set_index("id")
    outside = sorted(set(table.index) - set(rows["id"]))
    if outside:
        raise MeddapError(f"{attributes} lists {outside[0]!r}, which is not a train lesion here")
    missing = sorted(set(rows["id"]) - set(table.index))
    if missing:
        raise MeddapError(f"{attributes} has no attributes of train lesion {missing[0]!r}")
    return list(table.loc[rows["id"], "prompt"])


def _training_tensors(
    pipe,  # noqa: ANN001
    rows: pd.DataFrame,
    prompts: list[str],
    condition: str,
    fit: ControlNetFit,
    edge_model: str,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Latents, text embeddings and conditioning images of the rows (and their mirror images)
    at the pools' sampling resolution."""
    from meddap.diffusion.latents import load_image
    from meddap.pairs.controlnet import conditioning_image, load_edge_detector
    from meddap.pairs.pretrain import encode

    size, flip = fit.sampling.resolution, fit.training.flip
    images = torch.stack([load_image(path, size) for path in rows["image_path"]])
    pairs = [read_pair(row) for row in rows.itertuples()]
    detector = load_edge_detector(edge_model)
    conds = [conditioning_image(m, im, condition, size, detector) for im, m in pairs]
    conds = torch.stack(conds)
    if flip:
        images, conds = torch.cat([images, images.flip(-1)]), torch.cat([conds, conds.flip(-1)])
        prompts = prompts * 2
    latents, texts = encode(pipe, images, prompts)
    return latents, texts, conds


def _inputs_sha256(rows: pd.DataFrame, prompts: list[str]) -> str:
    """sha256 of what the training tensors come from: each row's id, image, mask and prompt."""
    files = zip(rows["id"], rows["image_path"], rows["mask_path"], prompts, strict=True)
    listing = [[i, file_sha256(image), file_sha256(mask), text] for i, image, mask, text in files]
    return hashlib.sha256(json.dumps(listing).encode()).hexdigest()


def _start(pipe, pretrained: str, seed: int):  # noqa: ANN001, ANN202
    """The ControlNet to fine-tune: `pretrained` (a folder or hub id) or a fresh one."""
    from diffusers import ControlNetModel

    from meddap.pairs.controlnet import build_controlnet

    if not pretrained:
        return build_controlnet(pipe.unet, pipe.vae_scale_factor, seed=seed)
    from meddap.diffusion.pipeline import verify_build

    verify_build(pretrained)
    try:
        return ControlNetModel.from_pretrained(pretrained, torch_dtype=torch.float32)
    except (OSError, ValueError) as err:
        raise MeddapError(
            f"pretrained ControlNet {pretrained} (config key segmentation.pairs.controlnet) "
            f"cannot be loaded: {err}"
        ) from None


def train_fold_controlnet(
    *,
    base_model: str,
    manifest: str,
    splits: str,
    attributes: str,
    model: str,
    train_log: str,
    fold: int,
    condition: str,
    pretrained: str,
    controlnet: ControlNetFit,
    seed: int,
    edge_model: str | list[str] = "",
) -> None:
    """Job: fine-tune the fold's ControlNet on its train lesions; write the folder and losses.

    `edge_model` ("" or [], Snakemake's empty named input: Canny) detects an edge condition's
    edges. Resumes from checkpoint.pt beside `model` when an earlier try of this same run left one.
    """
    from meddap.common.runtime import deterministic
    from meddap.common.seeds import derive_seed
    from meddap.diffusion.pipeline import load_pipeline
    from meddap.pairs.controlnet import train_controlnet

    how = controlnet.training
    rows = train_lesions(manifest, splits, fold)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    with deterministic(device):
        pipe = load_pipeline(base_model, device=str(device))
        prompts = prompts_of(rows, attributes, controlnet.prompts)
        edge_model = str(edge_model) if edge_model else ""
        tensors = _training_tensors(pipe, rows, prompts, condition, controlnet, edge_model)
    job_seed = derive_seed(seed, "controlnet", fold, condition)
    net = _start(pipe, pretrained, job_seed).to(device)
    run = fingerprint(
        **controlnet.params(),
        inputs_sha256=_inputs_sha256(rows, prompts),
        base_model=base_model,
        pretrained=pretrained,
        edge_model_sha256=file_sha256(edge_model) if edge_model else None,
        fold=fold,
        condition=condition,
        seed=seed,
    )
    checkpoint = Checkpoint(Path(model).parent / "checkpoint.pt", run)
    losses = train_controlnet(
        pipe,
        net,
        *tensors,
        steps=how.steps,
        batch_size=how.batch_size,
        learning_rate=how.learning_rate,
        seed=job_seed,
        checkpoint=checkpoint,
        every=how.checkpoint_every,
    )
    with atomic_dir(model) as tmp:
        net.save_pretrained(tmp, safe_serialization=True)
    log = pd.DataFrame({"step": range(1, len(losses) + 1), "loss": losses})
    size = controlnet.sampling.resolution
    write_parquet(
        log.assign(fold=fold, condition=condition, n_images=len(rows), resolution=size), train_log
    )
    checkpoint.remove()
