"""Seconds per segmenter training epoch, per model and image size.

    python tests/benchmarks/bench_seg.py [--sizes 128] [--images 48] [--epochs 2] [--paper]
    python tests/benchmarks/bench_seg.py --device cuda --sizes 256 384 --paper

An epoch is `--images` random image/mask pairs (48: about the lesion train split of a default
phantom fold) through the job's own task and loop (`build_task`, `train_steps`): the config's
loss (Dice+CE), or DSUNet's for `dsunet-s4-adv` (Dice on 4 stages and a discriminator step
after each generator step), batch 8 (4 with `--paper`), the default channels (`--paper`: the
paper's). By default every network once (the other dsunet-* names train fewer heads or no
discriminators). The first epoch warms up and is not counted. On CUDA it also prints the peak
GPU memory.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
import yaml

from meddap.common.settings import Segmentation
from meddap.common.training import constant_loop, train_steps
from meddap.seg.data import Pairs
from meddap.seg.models import build_segmenter
from meddap.seg.registry import SEGMENTERS
from meddap.seg.tasks import build_task

REPO = Path(__file__).resolve().parents[2]
MODELS = SEGMENTERS.names()
DEFAULT_MODELS = [*(m for m in MODELS if not m.startswith("dsunet")), "dsunet-s4-adv"]


def _pairs(n: int, size: int) -> Pairs:
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(n, 1, size, size, generator=generator)
    masks = (torch.rand(n, 1, size, size, generator=generator) > 0.8).float()
    return Pairs([str(k) for k in range(n)], ["benign"] * n, images, masks)


def epoch_seconds(
    net: torch.nn.Module, optimizer: torch.optim.Optimizer, task, epochs: int, device: torch.device
) -> float:
    """Mean seconds of `epochs` training epochs of `task` after one untimed warm-up epoch."""
    loop = constant_loop(net, optimizer, task, torch.Generator().manual_seed(0))
    updates = len(task.indices(torch.Generator().manual_seed(0)))  # one pass over the data
    train_steps(loop, updates)  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    train_steps(loop, updates * epochs)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / epochs


def seconds_per_epoch(model: str, size: int, args: argparse.Namespace, how: Segmentation) -> float:
    """Mean seconds of the timed epochs of `model` at `size` px."""
    device = torch.device(args.device)
    torch.manual_seed(0)
    net = build_segmenter(model, how.channels).to(device)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    data = _pairs(args.images, size)
    task = build_task(model, data, data, how, None, device)
    return epoch_seconds(net, optimizer, task, args.epochs, device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[128])
    parser.add_argument("--images", type=int, default=48)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--models", nargs="+", default=DEFAULT_MODELS, choices=MODELS)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--paper", action="store_true", help="config/paper.yaml's channels, batch")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = REPO / "config" / ("paper.yaml" if args.paper else "config.yaml")
    how = Segmentation.from_config(yaml.safe_load(config.read_text()))
    print(
        f"device {args.device}, {args.threads} thread(s), {args.images} images per epoch, "
        f"channels {how.channels}, batch {how.batch_size}"
    )
    for size in args.sizes:
        for model in args.models:
            if args.device == "cuda":
                torch.cuda.reset_peak_memory_stats()
            seconds = seconds_per_epoch(model, size, args, how)
            line = f"{model:15s} {size:4d} px  {seconds:8.2f} s/epoch"
            if args.device == "cuda":
                line += f"  peak {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB"
            print(line, flush=True)


if __name__ == "__main__":
    main()
