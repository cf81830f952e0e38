"""MTL's modes (its Table 5), one grid axis: `{task}[-do]`.

`task` is `seg` (single-task segmentation, λ = 1), `cls` (single-task classification, λ = 0),
`mt-l{λ}` (multi-task with loss weight λ, e.g. `mt-l0.85`) or `combined` (the masks of `seg` and
the classes of `cls`, trained with the same `-do` choice); `-do` trains with deterministic
oversampling. Prediction refining (PR) applies to the modes that predict both class and mask
(`mt-*`, `combined`) and is scored beside the raw predictions, so it needs no mode of its own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from meddap.common.errors import MeddapError

BACKBONES = ("unetpp_ds", "dsunet-s4")  # the segmenters a class head joins (`models`)
BACKBONE_PATTERN = "|".join(BACKBONES)  # the rules' `{backbone}` wildcard constraint
LAMBDA = r"0\.\d*[1-9]|[01]"  # canonical: no trailing zeros, so one λ has one name
TRAINED_PATTERN = rf"(?:seg|cls|mt-l(?:{LAMBDA}))(?:-do)?"  # wildcard constraints of the rules
REFINABLE_PATTERN = rf"(?:combined|mt-l(?:{LAMBDA}))(?:-do)?"
COMBINED_PATTERN = r"combined(?:-do)?"  # the modes joined from two single-task networks
MODE = re.compile(rf"(?P<task>seg|cls|combined|mt-l(?P<lam>{LAMBDA}))(?P<do>-do)?")


@dataclass(frozen=True)
class Mode:
    """One parsed mode."""

    name: str
    task: str  # seg | cls | mt | combined
    lam: float | None
    oversample: bool

    @property
    def trained(self) -> bool:
        """Whether a network is trained for this mode (`combined` reuses `seg` and `cls`)."""
        return self.task != "combined"

    @property
    def loss_weight(self) -> float:
        """λ of L = λ L_seg + (1 - λ) L_cls."""
        return {"seg": 1.0, "cls": 0.0}.get(self.task, self.lam)

    @property
    def has_masks(self) -> bool:
        return self.task != "cls"

    @property
    def has_classes(self) -> bool:
        return self.task != "seg"

    @property
    def refinable(self) -> bool:
        """Whether PR applies: the mode predicts both a class and a mask."""
        return self.has_masks and self.has_classes

    def parts(self) -> tuple[str, str]:
        """The (segmentation, classification) mode names `combined` is made of."""
        if self.task != "combined":
            raise MeddapError(f"mode {self.name!r} is not combined from single-task modes")
        suffix = "-do" if self.oversample else ""
        return f"seg{suffix}", f"cls{suffix}"


def parse_mode(name: str) -> Mode:
    """The mode `name`; stops with the grammar when it does not parse."""
    match = MODE.fullmatch(name)
    if not match:
        raise MeddapError(
            f"multi-task mode {name!r} is not seg, cls, combined or mt-l<λ> (λ in [0, 1] without "
            "trailing zeros, e.g. mt-l0.85), "
            "each optionally followed by -do"
        )
    task = "mt" if match["lam"] is not None else match["task"]
    lam = float(match["lam"]) if match["lam"] is not None else None
    return Mode(name, task, lam, match["do"] is not None)
