"""Milliseconds of wall time and of CPU per training update with 1 and 2 torch threads.

    python tests/benchmarks/bench_threads.py [--updates 40]

The default's classifier (SqueezeNet 1.1) and segmenter (MONAI UNet, the default's widths) at
64 px, batch 8, and `config/real-cpu.yaml`'s ResNet-18 at 128 px, batch 16 (a quarter of the
updates), one Adam update after another, each thread count in a fresh process. The classifiers
run in plain (NCHW) memory order and in the channels-last order `meddap.cls.models.build_model`
gives them. It shows why every section's `resources.threads` defaults to 1: on a small CPU
model a second thread buys little wall time for about twice the CPU, while two one-thread jobs
share the cores. Numbers depend on the CPU and its load.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time

import torch


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _update(net: torch.nn.Module, x: torch.Tensor, optimizer: torch.optim.Optimizer) -> None:
    loss = net(x).float().mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()


def measure(threads: int, updates: int) -> None:
    """Print one line per model for `threads` threads (run in its own process)."""
    import torchvision
    from monai.networks.nets import UNet

    from meddap.cls.models import build_model

    torch.set_num_threads(threads)
    models = {  # name: network, input (batch, channels, size), share of the updates
        "squeezenet1_1 NCHW": (torchvision.models.squeezenet1_1(num_classes=3), (8, 3, 64), 1),
        "squeezenet1_1 NHWC": (build_model("squeezenet1_1", 3, "none"), (8, 3, 64), 1),
        "resnet18 NCHW": (torchvision.models.resnet18(num_classes=3), (16, 3, 128), 4),
        "resnet18 NHWC": (build_model("resnet18", 3, "none"), (16, 3, 128), 4),
        "unet": (UNet(2, 1, 1, (8, 16, 32, 64, 128), (2, 2, 2, 2), num_res_units=2), (8, 1, 64), 1),
    }
    for name, (net, (batch, channels, size), share) in models.items():
        x = torch.randn(batch, channels, size, size)
        optimizer = torch.optim.Adam(net.parameters())
        for _ in range(3):
            _update(net, x, optimizer)
        n = max(1, updates // share)
        wall, cpu = time.perf_counter(), _cpu()
        for _ in range(n):
            _update(net, x, optimizer)
        wall, cpu = (time.perf_counter() - wall) / n, (_cpu() - cpu) / n
        print(f"{name:18} threads {threads}: {wall * 1e3:6.1f} ms wall, {cpu * 1e3:6.1f} ms CPU")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--updates", type=int, default=40)
    parser.add_argument("--threads", type=int, help=argparse.SUPPRESS)  # the child process
    args = parser.parse_args()
    if args.threads:
        measure(args.threads, args.updates)
        return
    for threads in (1, 2):
        cmd = [sys.executable, __file__, "--threads", str(threads), "--updates", str(args.updates)]
        subprocess.run(cmd, check=True)


if __name__ == "__main__":
    main()
