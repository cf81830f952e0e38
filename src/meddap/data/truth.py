"""The phantom's planted truth, for measuring curation: which pairs are duplicates, which not.

`generate_phantom` lists its planted duplicate groups in `duplicates_truth.csv` (columns image,
group, kind) and its same-patient neighbour frames, which are not duplicates, in
`neighbours_truth.csv` (columns image, neighbour_of); images are named `<class>/<file>`.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pandas as pd

Pair = tuple[str, str]


def folder_manifest(root: str | Path) -> pd.DataFrame:
    """The curation columns (id, label, image_path, mask_path) of a phantom folder; ids are
    `<class>/<file>` as in the truth files."""
    images = sorted(p for p in Path(root).glob("*/*.png") if "_mask" not in p.name)
    return pd.DataFrame(
        {
            "id": [f"{p.parent.name}/{p.name}" for p in images],
            "label": [p.parent.name for p in images],
            "image_path": [str(p) for p in images],
            "mask_path": [str(p.with_name(f"{p.stem}_mask.png")) for p in images],
        }
    )


def planted_pairs(root: str | Path) -> set[Pair]:
    """Every (sorted) pair of members of a planted duplicate group."""
    truth = pd.read_csv(Path(root) / "duplicates_truth.csv")
    return {
        tuple(sorted(p))
        for _, group in truth.groupby("group")
        for p in itertools.combinations(group.image, 2)
    }


def neighbour_pairs(root: str | Path) -> set[Pair]:
    """The (sorted) pairs of a neighbour frame and the frame it neighbours."""
    table = pd.read_csv(Path(root) / "neighbours_truth.csv")
    return {tuple(sorted(p)) for p in zip(table.image, table.neighbour_of, strict=True)}


def accepted_pairs(duplicates: pd.DataFrame) -> set[Pair]:
    """The pairs a duplicates table accepts as near-copies."""
    accepted = duplicates[duplicates["accepted"]]
    return set(zip(accepted["id_a"], accepted["id_b"], strict=True))


def precision_recall(detected: set[Pair], planted: set[Pair]) -> tuple[float, float]:
    """Pairwise precision and recall of `detected` against `planted` (1.0 when empty)."""
    hits = len(detected & planted)
    return hits / len(detected) if detected else 1.0, hits / len(planted) if planted else 1.0
