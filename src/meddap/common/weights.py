"""Safetensors files with one JSON metadata entry (one entry: several come out in random order)."""

from __future__ import annotations

import json

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from meddap.common.atomic import atomic_path
from meddap.common.errors import MeddapError

META_KEY = "meddap"


def read_weights(path: str, what: str) -> tuple[dict[str, torch.Tensor], dict]:
    """The tensors and the decoded metadata entry of `path`; stops naming it as `what`."""
    try:
        with safe_open(path, framework="pt") as handle:
            meta = json.loads((handle.metadata() or {}).get(META_KEY, "{}"))
        return load_file(path), meta
    except (OSError, SafetensorError, ValueError) as err:
        raise MeddapError(f"{path}: not a readable {what} ({err})") from err


def write_weights(tensors: dict[str, torch.Tensor], meta: dict, path: str) -> None:
    """Write `tensors` (made contiguous) and `meta` as the one metadata entry, atomically."""
    state = {key: value.contiguous() for key, value in tensors.items()}
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata={META_KEY: json.dumps(meta, sort_keys=True)})
