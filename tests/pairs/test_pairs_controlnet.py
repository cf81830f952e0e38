"""ControlNet conditioning on the shipped tiny Stable Diffusion (64 px, 16x16 latents)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import ControlNetModel, StableDiffusionPipeline
from skimage.draw import disk, ellipse
from skimage.segmentation import find_boundaries
from skimage.util import img_as_float32

from meddap.common.errors import MeddapError
from meddap.diffusion.pipeline import load_pipeline
from meddap.diffusion.prompts import prompt
from meddap.pairs.controlnet import (
    build_controlnet,
    conditioning_channels,
    conditioning_image,
    controlnet_pipeline,
    generate,
    load_edge_detector,
    train_controlnet,
)

MODEL = Path(__file__).resolve().parents[2] / "resources" / "tiny-sd-phantom"
SIZE = 64


@pytest.fixture(scope="module")
def pipe() -> StableDiffusionPipeline:
    return load_pipeline(str(MODEL))


@pytest.fixture(scope="module")
def text(pipe: StableDiffusionPipeline) -> torch.Tensor:
    """The embedding (1, 77, D) of a benign prompt."""
    with torch.no_grad():
        return pipe.encode_prompt([prompt("benign")], "cpu", 1, False)[0]


def _mask(row: int, col: int, size: int = SIZE) -> np.ndarray:
    mask = np.zeros((size, size), dtype=np.uint8)
    mask[ellipse(row, col, size // 8, size // 5, shape=mask.shape)] = 1
    return mask


def _controlnet(pipe: StableDiffusionPipeline, seed: int = 0) -> ControlNetModel:
    return build_controlnet(pipe.unet, pipe.vae_scale_factor, seed=seed)


def _perturbed(controlnet: ControlNetModel) -> ControlNetModel:
    """`controlnet` with seeded nonzero zero-convolutions (a stand-in for a trained one).

    The conditioning embedding's last conv is zero too: without it the residuals ignore `cond`.
    """
    g = torch.Generator().manual_seed(0)
    zero = (controlnet.controlnet_cond_embedding.conv_out, controlnet.controlnet_mid_block)
    with torch.no_grad():
        for block in (*controlnet.controlnet_down_blocks, *zero):
            for p in block.parameters():
                p.normal_(0.0, 0.1, generator=g)
    return controlnet


def _inputs(text: torch.Tensor) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return {
        "sample": torch.randn(2, 4, SIZE // 4, SIZE // 4, generator=g),
        "timestep": torch.tensor([10, 700]),
        "encoder_hidden_states": text.expand(2, -1, -1),
    }


def test_conditioning_blocks_match_the_vae_factor() -> None:
    assert conditioning_channels(8) == (16, 32, 96, 256)  # diffusers' and the original's
    assert conditioning_channels(4) == (16, 32, 96)
    assert conditioning_channels(16) == (16, 32, 96, 256, 512)
    with pytest.raises(MeddapError, match="power of two"):
        conditioning_channels(6)


def test_residuals_match_the_unet_down_blocks(
    pipe: StableDiffusionPipeline, text: torch.Tensor
) -> None:
    unet, inputs = pipe.unet, _inputs(text)
    seen: list[torch.Size] = []
    hooks = [unet.conv_in.register_forward_hook(lambda m, i, out: seen.append(out.shape))]
    hooks += [
        block.register_forward_hook(lambda m, i, out: seen.extend(r.shape for r in out[1]))
        for block in unet.down_blocks
    ]
    hooks.append(unet.mid_block.register_forward_hook(lambda m, i, out: seen.append(out.shape)))
    with torch.no_grad():
        unet(**inputs)
        cond = torch.stack([conditioning_image(_mask(30, 30), None, "mask", SIZE)] * 2)
        down, mid = _controlnet(pipe)(**inputs, controlnet_cond=cond, return_dict=False)
    for hook in hooks:
        hook.remove()
    assert [r.shape for r in (*down, mid)] == seen


def test_fresh_controlnet_leaves_the_unet_prediction_unchanged(
    pipe: StableDiffusionPipeline, text: torch.Tensor
) -> None:
    inputs = _inputs(text)
    cond = torch.stack([conditioning_image(_mask(20, 40), None, "mask", SIZE)] * 2)

    def guided(controlnet: ControlNetModel) -> torch.Tensor:
        down, mid = controlnet(**inputs, controlnet_cond=cond, return_dict=False)
        return pipe.unet(
            **inputs, down_block_additional_residuals=down, mid_block_additional_residual=mid
        ).sample

    with torch.no_grad():
        plain = pipe.unet(**inputs).sample
        assert torch.equal(guided(_controlnet(pipe)), plain)
        assert not torch.allclose(guided(_perturbed(_controlnet(pipe))), plain)


def test_build_is_seeded(pipe: StableDiffusionPipeline) -> None:
    a, b, c = (_controlnet(pipe, s).state_dict() for s in (0, 0, 1))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)
    encoder = pipe.unet.down_blocks.state_dict()
    copied = {k.removeprefix("down_blocks."): v for k, v in a.items() if k.startswith("down_")}
    assert all(torch.equal(copied[k], v) for k, v in encoder.items())


def test_mask_condition_repeats_the_mask() -> None:
    mask = _mask(30, 35) * 255
    cond = conditioning_image(mask, None, "mask", SIZE)
    assert cond.shape == (3, SIZE, SIZE) and cond.dtype == torch.float32
    assert all(torch.equal(channel, torch.from_numpy(mask > 0).float()) for channel in cond)
    small = conditioning_image(_mask(60, 70, size=128), None, "mask", 32)
    assert small.shape == (3, 32, 32) and set(small.unique().tolist()) == {0.0, 1.0}


def test_edge_condition_holds_image_edges_and_mask_boundary() -> None:
    image = np.full((SIZE, SIZE), 40, dtype=np.uint8)
    image[disk((32, 32), 12)] = 200
    mask = (image > 100).astype(np.uint8)
    edges, boundary, union = conditioning_image(mask, image, "edge", SIZE)
    expected = torch.from_numpy(find_boundaries(mask, mode="inner").astype(np.float32))
    assert torch.equal(boundary, expected) and expected.sum() > 0
    assert torch.equal(union, torch.maximum(edges, boundary))
    assert edges.sum() > 0 and edges[:10].sum() == 0
    flat = conditioning_image(np.zeros_like(mask), np.full_like(image, 90), "edge", SIZE)
    assert torch.count_nonzero(flat) == 0


def test_edge_detector_hook_replaces_canny() -> None:
    image, mask = np.zeros((SIZE, SIZE), np.uint8), np.zeros((SIZE, SIZE), np.uint8)
    cond = conditioning_image(mask, image, "edge", SIZE, edge_detector=lambda g: g + 0.5)
    assert torch.all(cond[0] == 0.5) and torch.all(cond[1] == 0)
    with pytest.raises(MeddapError, match="shape"):
        conditioning_image(mask, image, "edge", SIZE, edge_detector=lambda g: g[:2])


class _Sobel(torch.nn.Module):
    """A stand-in for an exported HED: Sobel gradient magnitude of channel 0, clipped to 1."""

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        kernel = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
        weights = torch.stack([kernel, kernel.T])[:, None]
        grad = torch.nn.functional.conv2d(image[:, :1], weights, padding=1)
        return grad.square().sum(1, keepdim=True).sqrt().clamp(0, 1)


def test_an_edge_model_given_by_path_detects_the_edges(tmp_path: Path) -> None:
    path = tmp_path / "hed.pt"
    torch.jit.script(_Sobel()).save(str(path))
    assert load_edge_detector("") is None  # null: Canny
    detector = load_edge_detector(str(path))
    image = np.full((SIZE, SIZE), 40, dtype=np.uint8)
    image[disk((32, 32), 12)] = 200
    edges = conditioning_image(image > 100, image, "edge", SIZE, detector)[0]
    gray = torch.from_numpy(img_as_float32(image))[None, None].expand(1, 3, -1, -1)
    assert torch.allclose(edges, _Sobel()(gray)[0, 0]) and edges.max() == 1.0
    (tmp_path / "notes.txt").write_text("not a model")
    with pytest.raises(MeddapError, match=r"notes\.txt .*edge_model. is not a TorchScript"):
        load_edge_detector(str(tmp_path / "notes.txt"))


@pytest.mark.parametrize(("condition", "image"), [("text", None), ("edge", None)])
def test_conditioning_refuses_text_and_edges_without_image(
    condition: str, image: np.ndarray | None
) -> None:
    with pytest.raises(MeddapError):
        conditioning_image(_mask(30, 30), image, condition, SIZE)


def test_training_moves_only_the_controlnet_and_is_seeded(
    pipe: StableDiffusionPipeline, text: torch.Tensor
) -> None:
    g = torch.Generator().manual_seed(2)
    latents = torch.randn(8, 4, SIZE // 4, SIZE // 4, generator=g)
    rows = torch.randint(16, 48, (8, 2), generator=g).tolist()
    conds = torch.stack([conditioning_image(_mask(r, c), None, "mask", SIZE) for r, c in rows])
    texts = text.expand(8, -1, -1)
    unet_before = {k: v.clone() for k, v in pipe.unet.state_dict().items()}
    runs = []
    for seed in (0, 0, 1):
        controlnet = _controlnet(pipe)
        settings = {"steps": 2, "batch_size": 4, "learning_rate": 1e-3, "seed": seed}
        losses = train_controlnet(pipe, controlnet, latents, texts, conds, **settings)
        runs.append((losses, controlnet.state_dict()))
    (losses, trained), (again, retrained), (other, _) = runs
    assert len(losses) == 2 and losses == again and losses != other
    assert all(torch.equal(trained[k], retrained[k]) for k in trained)
    assert torch.count_nonzero(trained["controlnet_mid_block.weight"]) > 0  # was zero
    assert all(torch.equal(v, unet_before[k]) for k, v in pipe.unet.state_dict().items())
    with pytest.raises(MeddapError, match="match latents"):
        train_controlnet(pipe, controlnet, latents, texts, conds[..., :32, :32], **settings)


def test_pipeline_generates_seeded_mask_dependent_images(
    pipe: StableDiffusionPipeline,
) -> None:
    conds = torch.stack([conditioning_image(_mask(r, 32), None, "mask", SIZE) for r in (16, 48)])
    prompts = [prompt("benign")] * 2

    def images(controlnet: ControlNetModel) -> list[np.ndarray]:
        return generate(controlnet_pipeline(pipe, controlnet), prompts, conds, [5, 5], 2, 2.0)

    fresh = images(_controlnet(pipe))
    assert np.array_equal(fresh[0], fresh[1])
    guided = _perturbed(_controlnet(pipe))
    first, second = images(guided), images(guided)
    assert all(im.shape == (SIZE, SIZE) and im.dtype == np.uint8 for im in first)
    assert all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))
    assert not np.array_equal(first[0], first[1])
