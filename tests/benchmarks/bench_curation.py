"""Benchmark: find_duplicates (aligned SSIM on top-k candidates) on ~780 phantom images, 128 px.

Run: python tests/benchmarks/bench_curation.py
The phantom plants near copies, crops and rescaled copies and as many neighbour frames (not
duplicates); the run prints its time and its pairwise precision and recall against that truth.
Times are of this machine (the former all-pairs SSIM took 26.4 s on the same images here).
"""

from __future__ import annotations

import itertools
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

from meddap.common.settings import Similarity
from meddap.data.curation import find_duplicates
from meddap.data.phantom import generate_phantom

PHANTOM = {"patients": 350, "image_size": 128, "duplicates": 40, "conflicting": 4}
SIMILARITY = Similarity(image_size=128, candidate_size=16, candidates=6, threshold=0.8)
THREADS = 2


def main() -> None:
    torch.set_num_threads(THREADS)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "phantom"
        generate_phantom(root, **PHANTOM, second_mask_fraction=0.1, seed=0)
        images = sorted(p for p in root.glob("*/*.png") if "_mask" not in p.name)
        names = [f"{p.parent.name}/{p.name}" for p in images]
        manifest = pd.DataFrame(
            {
                "id": names,
                "label": [n.split("/")[0] for n in names],
                "image_path": [str(p) for p in images],
                "mask_path": [str(p.with_name(f"{p.stem}_mask.png")) for p in images],
            }
        )
        start = time.perf_counter()
        found = find_duplicates(manifest, SIMILARITY)
        new_s = time.perf_counter() - start
        truth = pd.read_csv(root / "duplicates_truth.csv")
    planted = {
        tuple(sorted(p))
        for _, g in truth.groupby("group")
        for p in itertools.combinations(g.image, 2)
    }
    accepted = found[found["accepted"]]
    detected = set(zip(accepted["id_a"], accepted["id_b"], strict=True))
    hits = len(planted & detected)
    print(f"{len(manifest)} images at 128 px, {THREADS} threads, {len(found)} pairs scored")
    print(f"find_duplicates: {new_s:.1f} s")
    print(
        f"pairwise precision {hits / max(1, len(detected)):.3f}, recall {hits / len(planted):.3f}"
        f" ({hits} of {len(planted)} planted pairs, {len(detected)} detected)"
    )


if __name__ == "__main__":
    main()
