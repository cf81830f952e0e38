"""Deterministic oversampling (DO, MTL): class c of the train split repeated round(1 / P_c)×.

Rounding, not ceiling: the paper's own example, class shares 49.3 / 36.4 / 14.2 %, gives 2 / 3 / 7
repeats. Python's `round` halves to even; a share of exactly 40 % (1 / P = 2.5) gives 2.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from meddap.common.errors import MeddapError


def repeats(labels: Sequence[str]) -> dict[str, int]:
    """How often each class of `labels` is repeated: round(1 / its share), at least 1."""
    if not labels:
        raise MeddapError("deterministic oversampling needs a non-empty train split")
    counts = Counter(labels)
    return {label: max(1, round(len(labels) / n)) for label, n in sorted(counts.items())}


def oversampled(labels: Sequence[str]) -> list[int]:
    """Indices into `labels` with each image repeated its class' times, in the original order
    (image 0's copies first); the loop's seeded shuffle then mixes them every epoch."""
    times = repeats(labels)
    return [i for i, label in enumerate(labels) for _ in range(times[label])]
