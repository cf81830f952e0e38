"""Seconds per USLoRA training step, with and without the latent/text cache.

    python tests/benchmarks/bench_lora.py [--steps 20] [--images 8]
    python tests/benchmarks/bench_lora.py --real-unet [--steps 20] [--resolution 512]
        [--gradient-checkpointing]

The default measures the tiny SD on this machine. `--real-unet` times the SD v1.4 UNet
architecture (random weights, nothing downloaded) at `--resolution` px (512: 64x64 latents;
MEDDAP trains at 224), batch 1, fp16
mixed precision with fp32 LoRA weights on a CUDA GPU, and reports peak GPU memory.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from accelerate import Accelerator
from diffusers import UNet2DConditionModel
from PIL import Image

from meddap.common.settings import Lora, LoraCache
from meddap.diffusion.latents import load_image
from meddap.diffusion.pipeline import load_pipeline
from meddap.diffusion.prompts import prompt
from meddap.diffusion.tiny import build_tiny_sd, training_scheduler
from meddap.lora.cache import encode_fold, load_cache
from meddap.lora.params import SD14_UNET_CONFIG
from meddap.lora.train import adapt_unet, optimizer_step

LABELS = ("normal", "benign", "malignant")
ENCODING = LoraCache(resolution=64, flip=True, train_adjective="none")
LORA = Lora(
    targets="attn2",
    epochs=1,
    batch_size=1,
    learning_rate=1e-4,
    checkpoint_every=50,
    mixed_precision="no",
    gradient_checkpointing=False,
)


def _timed(step: Callable[[int], None], steps: int, sync: Callable[[], None]) -> float:
    """Seconds per call of `step`, after two warm-up calls."""
    for i in range(2):
        step(i)
    sync()
    started = time.perf_counter()
    for i in range(steps):
        step(i)
    sync()
    return (time.perf_counter() - started) / steps


def _dataset(root: Path, n: int) -> tuple[str, str, list[str], list[str]]:
    rng = np.random.default_rng(0)
    paths = [str(root / f"img{i}.png") for i in range(n)]
    labels = [LABELS[i % 3] for i in range(n)]
    for path in paths:
        Image.fromarray(rng.integers(0, 256, (80, 96), dtype=np.uint8)).save(path)
    ids = [f"img{i:03d}" for i in range(n)]
    manifest, splits = str(root / "manifest.parquet"), str(root / "splits.parquet")
    pd.DataFrame({"id": ids, "label": labels, "image_path": paths}).to_parquet(manifest)
    pd.DataFrame({"id": ids, "fold": 0, "split": "train"}).to_parquet(splits)
    return manifest, splits, paths, labels


def bench_tiny(steps: int, images: int, rank: int) -> None:
    """Tiny SD on CPU: cached latents/embeddings vs running the VAE and text encoder every step."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model, cache = str(root / "sd"), str(root / "cache.safetensors")
        build_tiny_sd(model=model, seed=0)
        manifest, splits, paths, labels = _dataset(root, images)
        started = time.perf_counter()
        encode_fold(
            manifest=manifest,
            splits=splits,
            cache=cache,
            base_model=model,
            fold=0,
            encoding=ENCODING,
        )
        encode_s = time.perf_counter() - started
        data, pipe = load_cache(cache), load_pipeline(model)
        adapt_unet(pipe.unet, rank=rank, targets="attn2", seed=0, checkpointing=False)
        params = [p for p in pipe.unet.parameters() if p.requires_grad]
        optimizer, accelerator = torch.optim.AdamW(params, lr=1e-4), Accelerator(cpu=True)
        scheduler, g = training_scheduler(), torch.Generator().manual_seed(0)

        def cached(i: int) -> None:
            index = torch.tensor([i % images])
            latents = data.latents(index, torch.tensor([i % 2 == 1]), g)
            optimizer_step(
                accelerator, pipe.unet, optimizer, scheduler, latents, data.text(index), g
            )

        @torch.no_grad()
        def encoded(i: int) -> tuple[torch.Tensor, torch.Tensor]:
            pixels = load_image(paths[i % images], 64)[None]
            if i % 2:
                pixels = pixels.flip(-1)
            latents = pipe.vae.encode(pixels).latent_dist.sample(g) * pipe.vae.config.scaling_factor
            return latents, pipe.encode_prompt(prompt(labels[i % images]), "cpu", 1, False)[0]

        def uncached(i: int) -> None:
            latents, text = encoded(i)
            optimizer_step(accelerator, pipe.unet, optimizer, scheduler, latents, text, g)

        with_cache = _timed(cached, steps, lambda: None)
        without = _timed(uncached, steps, lambda: None)
    print(f"tiny SD, CPU, {torch.get_num_threads()} threads, rank {rank}, batch 1, 64x64 images")
    print(f"  cache build ({images} images + flips): {encode_s:.2f} s")
    print(f"  s/step with cache:    {with_cache:.4f}")
    print(f"  s/step without cache: {without:.4f}")
    print(f"  ratio without/with:   {without / with_cache:.2f}x")


def bench_real_unet(steps: int, rank: int, checkpointing: bool, resolution: int) -> None:
    """SD v1.4 UNet architecture, random weights, batch 1, fp16 on CUDA, at `resolution` px."""
    cuda = torch.cuda.is_available()
    device, dtype = ("cuda", torch.float16) if cuda else ("cpu", torch.float32)
    if not cuda:
        print("no CUDA GPU: running fp32 on CPU (slow; the numbers are not the GPU benchmark)")
    with torch.device(device):
        unet = UNet2DConditionModel.from_config(SD14_UNET_CONFIG).to(dtype)
    adapt_unet(unet, rank=rank, targets="attn2", seed=0, checkpointing=checkpointing)
    params = [p for p in unet.parameters() if p.requires_grad]
    accelerator = Accelerator(mixed_precision="fp16" if cuda else "no", cpu=not cuda)
    unet, optimizer = accelerator.prepare(unet, torch.optim.AdamW(params, lr=1e-4))
    scheduler, g = training_scheduler(), torch.Generator().manual_seed(0)
    side = resolution // 8  # SD v1.x's VAE factor
    latents = torch.randn(1, 4, side, side, generator=g).to(device, dtype)
    text = torch.randn(1, 77, 768, generator=g).to(device, dtype)
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    per_step = _timed(
        lambda i: optimizer_step(accelerator, unet, optimizer, scheduler, latents, text, g),
        steps,
        sync,
    )
    processor = type(next(iter(unet.attn_processors.values()))).__name__
    print(
        f"SD v1.4 UNet on {torch.cuda.get_device_name(0) if cuda else 'CPU'}, {dtype}, "
        f"rank {rank} attn2, attention {processor}, gradient checkpointing {checkpointing}"
    )
    print(f"  LoRA s/step at {resolution} px, batch 1: {per_step:.4f}")
    if cuda:
        print(f"  peak GPU memory: {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--rank", type=int, default=4)
    parser.add_argument("--real-unet", action="store_true")
    parser.add_argument("--gradient-checkpointing", action="store_true")
    parser.add_argument("--resolution", type=int, default=512)
    args = parser.parse_args()
    if args.real_unet:
        bench_real_unet(args.steps, args.rank, args.gradient_checkpointing, args.resolution)
    else:
        bench_tiny(args.steps, args.images, args.rank)


if __name__ == "__main__":
    main()
