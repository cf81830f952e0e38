"""Synthetic images per second on the tiny SD (CPU here), per scheduler and step count.

    python tests/benchmarks/bench_synthesis.py [--images 32] [--batch 16]

Builds the tiny Stable Diffusion and a rank-4 LoRA in a temporary folder, then times
`meddap.synth.generate.render` for the default multistep solver (10 and 25 steps) and for 50 PNDM
steps (the SD v1.4 pipeline default used by the paper).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

from meddap.diffusion.pipeline import load_pipeline
from meddap.diffusion.tiny import build_tiny_sd
from meddap.lora.train import adapt_unet, save_adapter
from meddap.synth.generate import Sampling, load_generator, plan, render

SETTINGS = (("dpm_multistep", 10), ("dpm_multistep", 25), ("pndm", 50))


def _lora(model: Path, out: Path) -> Path:
    unet = load_pipeline(str(model)).unet
    unet.requires_grad_(False)
    adapt_unet(unet, rank=4, targets="attn2", seed=0, checkpointing=False)
    save_adapter(unet, str(out))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--batch", type=int, default=16)
    args = parser.parse_args()
    torch.set_num_threads(2)
    labels = pd.Series(["benign", "malignant", "normal"] * args.images)[: args.images]
    rows = plan(labels, 100, seed=0, fold=0, rank=4, adjective="none")
    with tempfile.TemporaryDirectory() as tmp:
        model = Path(tmp) / "tiny-sd"
        build_tiny_sd(model=str(model), seed=0)
        lora = _lora(model, Path(tmp) / "lora" / "pytorch_lora_weights.safetensors")
        for scheduler, steps in SETTINGS:
            pipe = load_generator(str(model), lora, scheduler, "cpu")
            how = Sampling(scheduler, steps, 7.5, "", args.batch, 64, 64)
            started = time.perf_counter()
            for i in range(0, len(rows), args.batch):
                render(pipe, rows.iloc[i : i + args.batch], how)
            seconds = time.perf_counter() - started
            print(f"{scheduler:14s} {steps:3d} steps: {len(rows) / seconds:6.2f} images/s")


if __name__ == "__main__":
    main()
