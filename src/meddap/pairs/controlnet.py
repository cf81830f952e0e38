"""ControlNet on the frozen Stable Diffusion: mask (ClinicalPrior) or edge (DiffBoost) conditioning.

diffusers' own `ControlNetModel` (a trainable copy of the UNet encoder whose zero convolutions
add residuals to the frozen UNet) and `StableDiffusionControlNetPipeline`. Training is
`meddap.diffusion.training`'s: its loss (DDPM noise or v target at random timesteps) with the
ControlNet-guided UNet as the model, its epoch order and step loop. Given a `Checkpoint`,
training saves its state every `every` steps and resumes from it; on CPU a resumed run ends with
the weights of an uninterrupted one.

Conditioning images are (3, S, S) in [0, 1]:

- `mask`: the binary lesion mask in all three channels.
- `edge` (DiffBoost): channel 0 the image's edges, channel 1 the mask's inner boundary, channel
  2 their union. The edges are Canny's (HED weights are not available offline) unless an edge
  model is given by path (`load_edge_detector`: a TorchScript export such as HED's).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
from diffusers import (
    ControlNetModel,
    DDPMScheduler,
    StableDiffusionControlNetPipeline,
    StableDiffusionPipeline,
    UNet2DConditionModel,
)
from PIL import Image, ImageOps
from skimage.feature import canny
from skimage.segmentation import find_boundaries
from skimage.util import img_as_float32

from meddap.common.checkpoint import Checkpoint
from meddap.common.errors import MeddapError
from meddap.common.runtime import deterministic
from meddap.common.seeds import derive_seed
from meddap.diffusion.training import (
    EpochOrder,
    Row,
    StepLoop,
    diffusion_loss,
    optimizer_update,
)
from meddap.synth.generate import to_gray

CONDITIONS = ("mask", "edge")
# Canny's Gaussian sigma in px at the conditioning size (64 px): it smooths away speckle, keeps
# lesion outlines; hysteresis thresholds are skimage's defaults (10% / 20% of the [0, 1] range).
CANNY_SIGMA = 1.5
# conditioning-embedding widths of diffusers' and the original ControlNet (SD v1.x: factor 8)
EMBEDDING_WIDTHS = (16, 32, 96, 256)

EdgeDetector = Callable[[np.ndarray], np.ndarray]


def conditioning_channels(vae_scale_factor: int) -> tuple[int, ...]:
    """Conditioning-embedding widths that downsample an image by `vae_scale_factor` exactly.

    Each block after the first halves the resolution, so a factor 2**k needs k + 1 blocks: the
    first k + 1 of `EMBEDDING_WIDTHS` (all four for SD v1.x's 8x VAE, (16, 32, 96) for the tiny
    model's 4x), each further one twice the last.
    """
    blocks = round(math.log2(vae_scale_factor)) if vae_scale_factor >= 1 else -1
    if blocks < 0 or 2**blocks != vae_scale_factor:
        raise MeddapError(f"the VAE's downscale factor {vae_scale_factor} is not a power of two")
    extra = tuple(EMBEDDING_WIDTHS[-1] * 2**i for i in range(1, blocks + 2 - len(EMBEDDING_WIDTHS)))
    return (EMBEDDING_WIDTHS + extra)[: blocks + 1]


def build_controlnet(
    unet: UNet2DConditionModel, vae_scale_factor: int, *, seed: int = 0
) -> ControlNetModel:
    """A ControlNet copying `unet`'s encoder, zero convolutions zero; seeded conditioning convs."""
    torch.manual_seed(seed)
    controlnet = ControlNetModel.from_unet(
        unet,
        conditioning_embedding_out_channels=conditioning_channels(vae_scale_factor),
        conditioning_channels=3,
    )
    return controlnet.to(unet.device)


def load_edge_detector(path: str) -> EdgeDetector | None:
    """The edge detector at `path` (config key segmentation.pairs.edge_model), None for "".

    A TorchScript module (e.g. a HED network exported with `torch.jit.script`/`trace`) mapping a
    (1, 3, H, W) float image in [0, 1] (the grayscale in three channels) to a (1, 1, H, W) edge
    map in [0, 1], run on the CPU.
    """
    if not path:
        return None
    try:
        module = torch.jit.load(path, map_location="cpu").eval()
    except (RuntimeError, ValueError, OSError) as err:
        raise MeddapError(
            f"edge model {path} (config key segmentation.pairs.edge_model) is not a "
            f"TorchScript module: {str(err).splitlines()[0]}"
        ) from None

    def detect(gray: np.ndarray) -> np.ndarray:
        image = torch.from_numpy(np.ascontiguousarray(gray, dtype=np.float32))
        with torch.no_grad():
            edges = module(image[None, None].expand(1, 3, -1, -1))
        return edges.reshape(edges.shape[-2:]).numpy() if edges.dim() == 4 else edges.numpy()

    return detect


def _resized(array: np.ndarray, size: int, resample: Image.Resampling) -> np.ndarray:
    """`array` centre-cropped to a square and resized, as `diffusion.latents.load_image` fits
    images."""
    return np.asarray(ImageOps.fit(Image.fromarray(array), (size, size), resample))


def _edges(image: np.ndarray, size: int, edge_detector: EdgeDetector | None) -> np.ndarray:
    """Edges in [0, 1] of a grayscale image resized (bilinear) to `size`."""
    gray = _resized(img_as_float32(image), size, Image.Resampling.BILINEAR)
    if edge_detector is None:
        return canny(gray, sigma=CANNY_SIGMA).astype(np.float32)
    edges = np.asarray(edge_detector(gray), dtype=np.float32)
    if edges.shape != gray.shape:
        raise MeddapError(f"the edge detector returned shape {edges.shape}, not {gray.shape}")
    return np.clip(edges, 0.0, 1.0)


def conditioning_image(
    mask: np.ndarray,
    image: np.ndarray | None,
    condition: str,
    size: int,
    edge_detector: EdgeDetector | None = None,
) -> torch.Tensor:
    """The (3, size, size) conditioning image in [0, 1] of a mask (and grayscale image).

    `mask` is nonzero on the lesion, resized with nearest neighbours; `edge` also needs the
    grayscale `image` (H, W), whose edges come from `edge_detector` (given the resized float
    image in [0, 1], returning an edge map of its shape in [0, 1]) or else Canny.
    """
    if condition not in CONDITIONS:
        raise MeddapError(f"condition {condition!r} has no conditioning image (use mask or edge)")
    lesion = _resized(np.asarray(mask) > 0, size, Image.Resampling.NEAREST)
    if condition == "mask":
        channels = [lesion.astype(np.float32)] * 3
    else:
        if image is None or np.ndim(image) != 2:
            raise MeddapError("the edge condition needs the real image as a 2-D grayscale array")
        edges = _edges(image, size, edge_detector)
        boundary = find_boundaries(lesion, mode="inner").astype(np.float32)
        channels = [edges, boundary, np.maximum(edges, boundary)]
    return torch.from_numpy(np.stack(channels))


def controlnet_loss(
    unet: UNet2DConditionModel,
    scheduler: DDPMScheduler,
    controlnet: ControlNetModel,
    latents: torch.Tensor,
    text_embeddings: torch.Tensor,
    cond: torch.Tensor,
    generator: torch.Generator,
) -> torch.Tensor:
    """Noise (or v) prediction MSE of the ControlNet-guided UNet at random timesteps."""

    def predict(noisy: torch.Tensor, steps: torch.Tensor) -> torch.Tensor:
        down, mid = controlnet(
            noisy,
            steps,
            encoder_hidden_states=text_embeddings,
            controlnet_cond=cond,
            return_dict=False,
        )
        return unet(
            noisy,
            steps,
            encoder_hidden_states=text_embeddings,
            down_block_additional_residuals=down,
            mid_block_additional_residual=mid,
            return_dict=False,
        )[0]

    return diffusion_loss(predict, scheduler, latents, generator)


def _check_training(
    factor: int,
    latents: torch.Tensor,
    text_embeddings: torch.Tensor,
    conds: torch.Tensor,
    **settings: float,
) -> None:
    """Stop at a non-positive setting or rows that do not pair up."""
    for key, value in settings.items():
        if value <= 0:
            raise MeddapError(f"ControlNet training setting {key}={value} must be positive")
    if not len(latents) == len(text_embeddings) == len(conds):
        raise MeddapError(
            f"ControlNet training needs as many text embeddings ({len(text_embeddings)}) and "
            f"conditioning images ({len(conds)}) as latents ({len(latents)})"
        )
    if tuple(conds.shape[-2:]) != tuple(factor * s for s in latents.shape[-2:]):
        raise MeddapError(
            f"conditioning images of {tuple(conds.shape[-2:])} px do not match latents of "
            f"{tuple(latents.shape[-2:])} at the VAE's downscale factor {factor}"
        )


def train_controlnet(
    pipe: StableDiffusionPipeline,
    controlnet: ControlNetModel,
    latents: torch.Tensor,
    text_embeddings: torch.Tensor,
    conds: torch.Tensor,
    *,
    steps: int,
    batch_size: int,
    learning_rate: float,
    seed: int,
    checkpoint: Checkpoint | None = None,
    every: int = 0,
) -> list[float]:
    """AdamW on `controlnet` alone (UNet, VAE, text encoder frozen); returns per-step losses.

    Row i of `latents` (scaled VAE latents), `text_embeddings` and `conds` belong together;
    batches follow a seeded permutation per epoch, so a seed gives the same run on the CPU.
    With a `checkpoint`, resumes from it (if it is this run's) and saves every `every` steps.
    """
    limits = {} if checkpoint is None else {"checkpoint_every": every}
    _check_training(
        pipe.vae_scale_factor,
        latents,
        text_embeddings,
        conds,
        steps=steps,
        batch_size=batch_size,
        learning_rate=learning_rate,
        **limits,
    )
    for frozen in (pipe.unet, pipe.vae, pipe.text_encoder):
        frozen.requires_grad_(False).eval()
    controlnet.requires_grad_(True).train()
    optimizer = torch.optim.AdamW(controlnet.parameters(), lr=learning_rate)
    noise = torch.Generator().manual_seed(derive_seed(seed, "noise"))
    parts = {"weights": controlnet, "optimizer": optimizer}
    loop = StepLoop(steps, noise, parts, checkpoint, every)
    order = EpochOrder(len(latents), batch_size, derive_seed(seed, "order"))
    scheduler = DDPMScheduler.from_config(pipe.scheduler.config)
    device, dtype = controlnet.device, controlnet.dtype

    def train_step(step: int) -> Row:
        index = order.batch(step)
        batch = [t[index].detach().to(device, dtype) for t in (latents, text_embeddings, conds)]
        loss = controlnet_loss(pipe.unet, scheduler, controlnet, *batch, noise)
        return {"loss": optimizer_update(loss, optimizer)}

    with deterministic(device):
        rows = loop.run(train_step, "ControlNet")
    controlnet.eval()
    return [row["loss"] for row in rows]


def controlnet_pipeline(
    pipe: StableDiffusionPipeline, controlnet: ControlNetModel
) -> StableDiffusionControlNetPipeline:
    """A ControlNet pipeline sharing `pipe`'s components (`controlnet` moved to its device).

    `controlnet` is cast to the UNet's dtype where that differs (fp16 pipelines on CUDA).
    """
    controlnet.to(pipe.device)
    if controlnet.dtype != pipe.unet.dtype:
        controlnet.to(pipe.unet.dtype)
    components = {**pipe.components, "safety_checker": None, "feature_extractor": None}
    controlled = StableDiffusionControlNetPipeline(
        **components, controlnet=controlnet, requires_safety_checker=False
    )
    controlled.set_progress_bar_config(disable=True)
    return controlled


@torch.no_grad()
def generate(
    pipeline: StableDiffusionControlNetPipeline,
    prompts: Sequence[str],
    conds: torch.Tensor,
    seeds: Sequence[int],
    steps: int,
    guidance: float,
    negative_prompt: str = "",
) -> list[np.ndarray]:
    """Grayscale uint8 images of the conditioning images `conds` (B, 3, S, S), one per seed."""
    if not len(prompts) == len(conds) == len(seeds):
        raise MeddapError(
            f"generate needs one prompt and seed per conditioning image, got {len(prompts)} "
            f"prompts, {len(seeds)} seeds and {len(conds)} conditioning images"
        )
    size = conds.shape[-1]
    out = pipeline(
        list(prompts),
        image=conds,
        height=size,
        width=size,
        num_inference_steps=steps,
        guidance_scale=guidance,
        negative_prompt=[negative_prompt] * len(prompts) if negative_prompt else None,
        generator=[torch.Generator("cpu").manual_seed(int(s)) for s in seeds],
        output_type="np",
    )
    return [to_gray(image, size) for image in out.images]
