"""Where and how a training job runs: device, precision, deterministic kernels and RNG states.

Shared by every trainer (classifier, LoRA, the segmenters to come), so that a config key such as
`classifier.mixed_precision` or `lora.mixed_precision` means the same thing everywhere.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import torch

from meddap.common.errors import MeddapError

log = logging.getLogger(__name__)
WEIGHT_DTYPES = {"no": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def resolve_device(choice: str, key: str) -> torch.device:
    """'auto' is CUDA when present, else the CPU; 'cuda' needs a GPU (stops naming `key`)."""
    cuda = torch.cuda.is_available()
    if choice == "auto":
        return torch.device("cuda" if cuda else "cpu")
    if choice not in ("cpu", "cuda"):
        raise MeddapError(f"config key {key}: {choice!r} is not auto, cpu or cuda")
    if choice == "cuda" and not cuda:
        raise MeddapError(f"config key {key} is cuda but no CUDA GPU is available")
    return torch.device(choice)


def resolve_precision(choice: str, key: str, device: torch.device | None = None) -> str:
    """'auto' is fp16 on CUDA and 'no' on the CPU; fp16 and bf16 need a CUDA GPU.

    `device` is where the job trains (default: CUDA when present); `key` names the config key.
    """
    cuda = device.type == "cuda" if device is not None else torch.cuda.is_available()
    if choice == "auto":
        return "fp16" if cuda else "no"
    if choice not in WEIGHT_DTYPES:
        raise MeddapError(f"config key {key}: {choice!r} is not auto, no, fp16 or bf16")
    if choice != "no" and not cuda:
        raise MeddapError(f"config key {key}: {choice} needs a CUDA GPU")
    return choice


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """Autocast to fp16/bf16 on CUDA while training; no change for precision 'no'."""
    if precision == "no":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=WEIGHT_DTYPES[precision])


def grad_scaler(device: torch.device, precision: str) -> torch.amp.GradScaler | None:
    """A loss scaler for fp16 training (bf16 and fp32 need none)."""
    return torch.amp.GradScaler(device.type) if precision == "fp16" else None


@contextmanager
def deterministic(device: torch.device) -> Iterator[None]:
    """Deterministic kernels (errors on CPU, warnings on GPU) inside, then the previous mode."""
    before = torch.are_deterministic_algorithms_enabled()
    warn = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True, warn_only=device.type != "cpu")
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before, warn_only=warn)


def rng_state(generators: Mapping[str, torch.Generator] | None = None) -> dict[str, torch.Tensor]:
    """The torch CPU RNG, every CUDA RNG when present and `generators` by name, as tensors."""
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state |= {f"cuda/{i}": s for i, s in enumerate(torch.cuda.get_rng_state_all())}
    return state | {f"generator/{k}": g.get_state() for k, g in (generators or {}).items()}


def restore_rng(
    state: Mapping[str, torch.Tensor], generators: Mapping[str, torch.Generator] | None = None
) -> None:
    """Set the RNGs saved by `rng_state` (CUDA ones only where a GPU is present)."""
    torch.set_rng_state(state["torch"])
    cuda = [state[f"cuda/{i}"] for i in range(len(state)) if f"cuda/{i}" in state]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)
    for name, generator in (generators or {}).items():
        generator.set_state(state[f"generator/{name}"])


class StepMeter:
    """A training loop's progress: a tqdm bar on the console; the step, loss and steps/s in the
    log every `every` steps (20 lines a run by default) and at the last step."""

    def __init__(self, total: int, desc: str, *, start: int = 0, every: int = 0) -> None:
        from tqdm.auto import tqdm

        self.bar = tqdm(total=total, initial=start, desc=desc, unit="step")
        self.total, self.desc, self.step, self.first = total, desc, start, start
        self.every = every or max(1, total // 20)
        self.started = time.perf_counter()

    def update(self, loss: float, **shown: str) -> None:
        """One step done with `loss` (`shown`: more fields of the bar)."""
        self.step += 1
        self.bar.update()
        self.bar.set_postfix(**shown, loss=f"{loss:.4f}")
        if self.step % self.every == 0 or self.step == self.total:
            rate = (self.step - self.first) / (time.perf_counter() - self.started)
            log.info(
                "%s: step %d/%d, loss %.4f, %.3f steps/s",
                self.desc,
                self.step,
                self.total,
                loss,
                rate,
            )

    def close(self) -> None:
        self.bar.close()
