"""ControlNet training seconds per step and mask-conditioned synthesis images per second.

    python tests/benchmarks/bench_controlnet.py [--steps 10] [--batch-size 8] [--images 32]
    python tests/benchmarks/bench_controlnet.py --sd15 [--steps 10] [--resolution 512]  # CUDA

The default times the shipped tiny SD with the shipped tiny ControlNet on this machine (64 px,
16x16 latents), through the jobs' own functions (`controlnet_loss` steps as `train_controlnet`
takes them; `generate` with 10 DPM steps, guidance 7.5). `--sd15` builds an SD v1.x-sized UNet
and its ControlNet with random weights as the workflow builds a fresh one (`build_controlnet`:
conditioning embedding (16, 32, 96, 256) for the 8x VAE) and times training steps
at `--resolution` px (512: 64x64 latents) at batch 1, fp16 on CUDA, with the peak memory.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from bench_lora import _timed  # the sibling benchmark's timer (run as a script from here)
from diffusers import ControlNetModel, DDPMScheduler, UNet2DConditionModel

from meddap.diffusion.pipeline import load_pipeline
from meddap.diffusion.prompts import prompt
from meddap.lora.params import SD14_UNET_CONFIG
from meddap.pairs.controlnet import (
    build_controlnet,
    controlnet_loss,
    controlnet_pipeline,
    generate,
)
from meddap.pairs.pretrain import BASE_MODEL, DEFAULT_OUTPUT

REPO = Path(__file__).resolve().parents[2]


def _masks(n: int, size: int) -> torch.Tensor:
    """n conditioning images (3, size, size): a centred disc of varying radius."""
    rows, cols = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    radius = torch.linspace(size / 10, size / 4, n)[:, None, None]
    disc = ((rows - size / 2) ** 2 + (cols - size / 2) ** 2 < radius**2).float()
    return disc[:, None].expand(-1, 3, -1, -1)


def _train_steps(unet, controlnet, latents, text, conds, steps: int, sync) -> float:  # noqa: ANN001
    """Seconds per AdamW step of the ControlNet alone on one fixed batch."""
    unet.requires_grad_(False)
    optimizer = torch.optim.AdamW(controlnet.parameters(), lr=1e-4)
    scheduler, generator = DDPMScheduler(), torch.Generator().manual_seed(0)

    def step(_: int) -> None:
        loss = controlnet_loss(unet, scheduler, controlnet, latents, text, conds, generator)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return _timed(step, steps, sync)


def bench_tiny(steps: int, batch_size: int, images: int) -> None:
    """The shipped tiny models on the CPU (or CUDA when present)."""
    pipe = load_pipeline(str(REPO / BASE_MODEL))
    pipe.set_progress_bar_config(disable=True)
    net = ControlNetModel.from_pretrained(REPO / DEFAULT_OUTPUT, torch_dtype=torch.float32)
    size = pipe.unet.config.sample_size * pipe.vae_scale_factor
    g = torch.Generator().manual_seed(0)
    side = size // pipe.vae_scale_factor
    latents = torch.randn(batch_size, 4, side, side, generator=g)
    text = pipe.encode_prompt([prompt("benign")] * batch_size, "cpu", 1, False)[0].detach()
    conds = _masks(batch_size, size)
    per_step = _train_steps(pipe.unet, net, latents, text, conds, steps, lambda: None)
    print(f"tiny ControlNet, {torch.get_num_threads()} threads, batch {batch_size}, {size} px")
    print(f"  training s/step: {per_step:.3f}")
    controlled = controlnet_pipeline(pipe, net.eval())
    conds = _masks(images, size)
    started = time.perf_counter()
    generate(controlled, [prompt("benign")] * images, conds, list(range(images)), 10, 7.5)
    print(
        f"  synthesis images/s (10 DPM steps, batch {images}): "
        f"{images / (time.perf_counter() - started):.2f}"
    )


def bench_sd15(steps: int, resolution: int) -> None:
    """SD v1.x-sized UNet and ControlNet, random weights, batch 1, fp16 on CUDA."""
    cuda = torch.cuda.is_available()
    device, dtype = ("cuda", torch.float16) if cuda else ("cpu", torch.float32)
    if not cuda:
        print("no CUDA GPU: running fp32 on CPU (slow; the numbers are not the GPU benchmark)")
    with torch.device(device):
        unet = UNet2DConditionModel.from_config(SD14_UNET_CONFIG).to(dtype)
        net = build_controlnet(unet, 8).to(dtype)
    g = torch.Generator().manual_seed(0)
    latents = torch.randn(1, 4, resolution // 8, resolution // 8, generator=g).to(device, dtype)
    text = torch.randn(1, 77, 768, generator=g).to(device, dtype)
    conds = _masks(1, resolution).to(device, dtype)
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    per_step = _train_steps(unet, net, latents, text, conds, steps, sync)
    print(f"SD v1.x-sized ControlNet on {torch.cuda.get_device_name(0) if cuda else 'CPU'}")
    print(f"  ControlNet training s/step (batch 1, {resolution} px): {per_step:.4f}")
    if cuda:
        print(f"  peak GPU memory: {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--sd15", action="store_true")
    parser.add_argument("--resolution", type=int, default=512, help="--sd15's image size (px)")
    args = parser.parse_args()
    if args.sd15:
        bench_sd15(args.steps, args.resolution)
    else:
        bench_tiny(args.steps, args.batch_size, args.images)


if __name__ == "__main__":
    main()
