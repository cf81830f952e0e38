"""One resumable checkpoint file per job, fingerprinted by the run it belongs to.

A trainer saves everything its next steps depend on (weights, optimizer, RNG states, progress)
with `Checkpoint.save`; a rerun of the same job loads it and continues. The fingerprint (e.g.
`fingerprint(**settings)`) tells a run's own file from a stale one left by other settings,
which is discarded. Files are written atomically and read with `torch.load(weights_only=True)`,
so a state holds only tensors, numbers, strings and containers of them.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from meddap.common.atomic import atomic_path

log = logging.getLogger(__name__)
RUN_KEY = "run"


def fingerprint(**parts: object) -> str:
    """A run's fingerprint: `parts` as key-sorted JSON."""
    return json.dumps(parts, sort_keys=True, default=str)


class Checkpoint:
    """The checkpoint file `path` of the run `run_fingerprint`."""

    def __init__(self, path: str | os.PathLike[str], run_fingerprint: str) -> None:
        self.path = Path(path)
        self.run = run_fingerprint

    def save(self, state: dict[str, Any]) -> None:
        """Write `state` (and the fingerprint) atomically, replacing any earlier checkpoint."""
        with atomic_path(self.path) as tmp:
            torch.save({**state, RUN_KEY: self.run}, tmp)

    def load(self, required: Iterable[str] = ()) -> dict[str, Any] | None:
        """The saved state of this run; None (and the file removed) when absent, another's, or
        without a value for a `required` key (saved in another layout by other code)."""
        if not self.path.is_file():
            return None
        try:
            state = torch.load(self.path, map_location="cpu", weights_only=True)
        except (OSError, EOFError, RuntimeError, pickle.UnpicklingError) as err:
            log.warning("discarding %s: it cannot be read (%s)", self.path, err)
            return self.remove()
        if not isinstance(state, dict) or state.get(RUN_KEY) != self.run:
            log.warning("discarding %s: it was saved by another run", self.path)
            return self.remove()
        missing = [key for key in required if state.get(key) is None]
        if missing:
            log.warning("discarding %s: it holds no %r (another layout)", self.path, missing[0])
            return self.remove()
        del state[RUN_KEY]
        return state

    def remove(self) -> None:
        """Delete the file, if any (once the job's outputs are written)."""
        self.path.unlink(missing_ok=True)
