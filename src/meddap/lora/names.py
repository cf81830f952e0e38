"""Names of the generator's adaptations, light enough for the workflow to import when it plans.

An adaptation is `none` (the base generator), `r<k>` (a LoRA of rank k) or `full` (every UNet
weight fine-tuned); its rank is what paths and the training job take.
"""

from __future__ import annotations

from meddap.common.errors import MeddapError

NONE = "none"
FULL = "full"  # the "rank" of full fine-tuning: every UNet weight is trained


def adaptation_rank(adaptation: str) -> int | str:
    """`"r4"` -> 4, `"full"` -> FULL, `"none"` -> 0 (the base generator)."""
    if adaptation in (NONE, FULL):
        return 0 if adaptation == NONE else FULL
    if not (adaptation.startswith("r") and adaptation[1:].isdigit() and int(adaptation[1:]) > 0):
        raise MeddapError(f"adaptation {adaptation!r} is not none, r<rank> or full")
    return int(adaptation[1:])
