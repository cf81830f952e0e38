"""Seeds derived from the master seed and a job's wildcards (stable across runs and machines)."""

from __future__ import annotations

import hashlib


def derive_seed(seed: int, *parts: object) -> int:
    """A 63-bit seed from `seed` and `parts` (e.g. fold, rank, adjective, index)."""
    text = "/".join(str(p) for p in (seed, *parts))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") >> 1
