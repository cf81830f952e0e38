"""Per-fold choice of the LoRA rank used for augmentation (`synthesis.rank`)."""

from __future__ import annotations

import json
from pathlib import Path

from meddap.common.atomic import write_json
from meddap.common.errors import MeddapError

INCEPTION = "fid_inception"
INCEPTION_PX = 299  # synth.quality's Inception input, NoTrainInceptionV3.INPUT_IMAGE_SIZE (tested)


def metric_scale(metric: str, image_size: int) -> str:
    """What a FID/FD/KID key measures: its kind, features, implementation and image size
    (`image_size`: `quality.image_size`, that of the in-domain features)."""
    kind = "KID" if metric.startswith("kid_") else "FID" if "inception" in metric else "FD"
    if "inception" in metric:
        return f"{kind} (Inception-v3 pool features, torch-fidelity weights, {INCEPTION_PX} px)"
    features = metric.split("_", 1)[1].removesuffix("_mean").removesuffix("_real_only")
    return f"{kind} ({features} features of the real-only classifier, {image_size} px)"


def selection_metric(record: dict) -> str:
    """Inception FID when it was computed, else the in-domain Fréchet distance."""
    if isinstance(record.get(INCEPTION), (int, float)):
        return INCEPTION
    in_domain = sorted(k for k in record if k.startswith("fd_") and k.endswith("_real_only"))
    if not in_domain:
        raise MeddapError("quality record has neither fid_inception nor an fd_*_real_only metric")
    return in_domain[0]


def choose_rank(records: dict[int, dict]) -> dict:
    """The rank whose adjective-free synthetic set has the lowest FID (ties: smaller rank)."""
    metric = selection_metric(next(iter(records.values())))
    scores = {rank: float(record[metric]) for rank, record in records.items()}
    best = min(scores, key=lambda r: (scores[r], r))
    return {"rank": best, "metric": metric, "scores": scores, "rule": "lowest " + metric}


def select_rank(*, quality: list[str], selection: str, ranks: list[int], choice: str | int) -> None:
    """Write the fold's rank: fixed by config, or the best by FID of the 'none' sets."""
    if choice != "best":
        if int(choice) not in ranks:
            raise MeddapError(f"config key 'synthesis.rank': {choice} is not in lora.ranks {ranks}")
        write_json({"rank": int(choice), "rule": "fixed by config key synthesis.rank"}, selection)
        return
    records = {
        rank: json.loads(Path(path).read_text()) for rank, path in zip(ranks, quality, strict=True)
    }
    write_json(choose_rank(records), selection)
