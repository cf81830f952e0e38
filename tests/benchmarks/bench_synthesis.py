"""Synthetic images per second on the tiny SD (CPU here), per scheduler and step count.

    python tests/benchmarks/bench_synthesis.py [--images 32] [--batch 16]
    python tests/benchmarks/bench_synthesis.py --sd15 [--images 16] [--batch 8] [--resolution 512]

Builds the tiny Stable Diffusion and a rank-4 LoRA in a temporary folder, then times
`meddap.synth.generate.render` for the default multistep solver (10 and 25 steps) and for 50 PNDM
steps (the SD v1.4 pipeline default used by the paper). `--sd15` times the same on an SD v1.x-sized
pipeline with random weights (`tests/sd_shaped.py`'s `FULL` widths), fp16 on CUDA (fp32 on a CPU).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch
from diffusers import DPMSolverMultistepScheduler, PNDMScheduler

from meddap.diffusion.pipeline import load_pipeline
from meddap.diffusion.tiny import build_tiny_sd
from meddap.lora.train import adapt_unet, save_adapter
from meddap.synth.generate import Sampling, load_generator, plan, render

SETTINGS = (("dpm_multistep", 10), ("dpm_multistep", 25), ("pndm", 50))
SCHEDULERS = {"dpm_multistep": DPMSolverMultistepScheduler, "pndm": PNDMScheduler}


def _lora(model: Path, out: Path) -> Path:
    unet = load_pipeline(str(model)).unet
    unet.requires_grad_(False)
    adapt_unet(unet, rank=4, targets="attn2", seed=0, checkpointing=False)
    save_adapter(unet, str(out))
    return out


def _rows(images: int) -> pd.DataFrame:
    labels = pd.Series(["benign", "malignant", "normal"] * images)[:images]
    return plan(labels, 100, seed=0, fold=0, rank=4, adjective="none")


def _images_per_second(pipe, rows: pd.DataFrame, how: Sampling) -> float:  # noqa: ANN001
    started = time.perf_counter()
    for i in range(0, len(rows), how.batch_size):
        render(pipe, rows.iloc[i : i + how.batch_size], how)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return len(rows) / (time.perf_counter() - started)


def bench_sd15(images: int, batch: int, resolution: int, steps_override: int | None) -> None:
    """An SD v1.x-sized random pipeline, fp16 on CUDA, 30 DPM and 50 PNDM steps (or `steps`)."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repo: tests.sd_shaped
    from tests.sd_shaped import FULL, sd_pipeline

    cuda = torch.cuda.is_available()
    device, dtype = ("cuda", torch.float16) if cuda else ("cpu", torch.float32)
    with tempfile.TemporaryDirectory() as tmp:
        pipe = sd_pipeline(Path(tmp), FULL).to(device, dtype)
    pipe.set_progress_bar_config(disable=True)
    rows = _rows(images)
    where = torch.cuda.get_device_name(0) if cuda else "CPU (not the GPU benchmark)"
    for scheduler, default in (("dpm_multistep", 30), ("pndm", 50)):
        steps = steps_override or default
        extra = {"skip_prk_steps": True} if scheduler == "pndm" else {}  # as SD v1.4 ships it
        pipe.scheduler = SCHEDULERS[scheduler].from_config(pipe.scheduler.config, **extra)
        how = Sampling(scheduler, steps, 7.5, "", batch, resolution, resolution)
        rate = _images_per_second(pipe, rows, how)
        print(
            f"SD v1.x-sized synthesis on {where}, {dtype}, {resolution} px, batch {batch}, "
            f"{scheduler} {steps} steps: {rate:.2f} images/s"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--sd15", action="store_true")
    parser.add_argument("--resolution", type=int, default=512, help="--sd15's image size (px)")
    parser.add_argument("--steps", type=int, help="--sd15's denoising steps of both schedulers")
    args = parser.parse_args()
    if args.sd15:
        bench_sd15(args.images, args.batch, args.resolution, args.steps)
        return
    torch.set_num_threads(2)
    rows = _rows(args.images)
    with tempfile.TemporaryDirectory() as tmp:
        model = Path(tmp) / "tiny-sd"
        build_tiny_sd(model=str(model), seed=0)
        lora = _lora(model, Path(tmp) / "lora" / "pytorch_lora_weights.safetensors")
        for scheduler, steps in SETTINGS:
            pipe = load_generator(str(model), lora, scheduler, "cpu")
            how = Sampling(scheduler, steps, 7.5, "", args.batch, 64, 64)
            rate = _images_per_second(pipe, rows, how)
            print(f"{scheduler:14s} {steps:3d} steps: {rate:6.2f} images/s")


if __name__ == "__main__":
    main()
