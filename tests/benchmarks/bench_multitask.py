"""Seconds per multi-task training epoch (MTL), per backbone, mode and image size.

    python tests/benchmarks/bench_multitask.py [--sizes 64] [--images 66] [--epochs 2] [--paper]
    python tests/benchmarks/bench_multitask.py --device cuda --sizes 128 --paper

An epoch is `--images` random image/mask pairs of mixed classes (66: about the train split of a
default phantom fold, normals included) through the job's own network, loss and task
(`build_net`, `MultiTaskLoss`, `MultiTaskTask`, `train_steps`), with the config's channels, head
and batch (`--paper`: config/paper.yaml's). `-do` modes oversample, so their epochs are longer.
The first epoch warms up and is not counted. On CUDA it also prints the peak GPU memory.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import yaml
from bench_seg import epoch_seconds  # the sibling benchmark (run as a script from here)

from meddap.common.settings import Multitask
from meddap.multitask.losses import MultiTaskLoss
from meddap.multitask.models import BACKBONES, N_HEADS
from meddap.multitask.modes import parse_mode
from meddap.multitask.tasks import MultiTaskTask
from meddap.multitask.train import build_net
from meddap.seg.data import Pairs

REPO = Path(__file__).resolve().parents[2]


def _pairs(n: int, size: int) -> Pairs:
    """Random images of 49/36/15 % benign/malignant/normal; the normals' masks are empty."""
    generator = torch.Generator().manual_seed(0)
    labels = ["benign"] * (n * 49 // 100) + ["malignant"] * (n * 36 // 100)
    labels += ["normal"] * (n - len(labels))
    images = torch.rand(n, 1, size, size, generator=generator)
    masks = (torch.rand(n, 1, size, size, generator=generator) > 0.8).float()
    masks[[i for i, label in enumerate(labels) if label == "normal"]] = 0
    return Pairs([str(k) for k in range(n)], labels, images, masks)


def seconds_per_epoch(backbone: str, mode: str, size: int, args: argparse.Namespace) -> float:
    """Mean seconds of the timed epochs of `backbone` in `mode` at `size` px."""
    device = torch.device(args.device)
    parsed = parse_mode(mode)
    torch.manual_seed(0)
    net = build_net(backbone, args.how).to(device)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    data = _pairs(args.images, size)
    criterion = MultiTaskLoss(parsed.loss_weight, N_HEADS)
    task = MultiTaskTask(data, data, args.how.batch_size, criterion, parsed.oversample)
    return epoch_seconds(net, optimizer, task, args.epochs, device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64])
    parser.add_argument("--images", type=int, default=66)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--backbones", nargs="+", default=list(BACKBONES), choices=BACKBONES)
    parser.add_argument("--modes", nargs="+", default=["seg", "mt-l0.85", "mt-l0.85-do"])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--paper", action="store_true", help="config/paper.yaml's settings")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = REPO / "config" / ("paper.yaml" if args.paper else "config.yaml")
    args.how = Multitask.from_config(yaml.safe_load(config.read_text()))
    print(
        f"device {args.device}, {args.threads} thread(s), {args.images} images per epoch, "
        f"channels {args.how.channels}, head {args.how.head_width}/{args.how.head_hidden}, "
        f"batch {args.how.batch_size}"
    )
    for size in args.sizes:
        for backbone in args.backbones:
            for mode in args.modes:
                if args.device == "cuda":
                    torch.cuda.reset_peak_memory_stats()
                seconds = seconds_per_epoch(backbone, mode, size, args)
                line = f"{backbone:10s} {mode:12s} {size:4d} px  {seconds:8.2f} s/epoch"
                if args.device == "cuda":
                    line += f"  peak {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB"
                print(line, flush=True)


if __name__ == "__main__":
    main()
