"""ClinicalPrior's Table 2: rows per (target, adaptation) from quality JSON and parameter counts."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from meddap.common.errors import MeddapError
from meddap.lora.names import adaptation_rank
from meddap.report.cross_domain import cross_domain_table

FD = "fd_squeezenet1_1_real_only"
KID = "kid_squeezenet1_1_real_only_mean"
ADAPTATIONS = ["none", "r2", "full"]
TRAINABLE = {"r2": 1234, "full": 99999}


def _record(fold: int, fd: float) -> dict:
    return {
        "fold": fold,
        FD: fd,
        KID: fd / 1000,
        "kid_squeezenet1_1_real_only_std": 0.1,
        "fid_inception": "unavailable",
        "kid_inception_mean": "unavailable",
        "kid_inception_std": "unavailable",
        "ms_ssim_diversity": 0.3,
        "image_size": 64,
    }


def _inputs(root: Path, fds: dict[tuple[int, str], float]) -> dict:
    sets, quality, params = [], [], []
    for fold in (0, 1):
        for a in ADAPTATIONS:
            sets.append({"target": "ext", "fold": fold, "adaptation": a})
            path = root / f"q{fold}{a}.json"
            path.write_text(json.dumps(_record(fold, fds[fold, a])))
            quality.append(str(path))
            if a != "none":
                p = root / f"p{fold}{a}.json"
                p.write_text(json.dumps({"trainable": TRAINABLE[a]}))
                params.append(str(p))
    outputs = {k: str(root / f"t.{k}") for k in ("parquet", "csv", "markdown")}
    return {"quality": quality, "params_json": params, "sets": sets, **outputs}


def test_rows_hold_mean_and_spread_over_folds_and_both_parameter_counts(tmp_path: Path) -> None:
    fds = {(0, "none"): 300.0, (1, "none"): 500.0, (0, "r2"): 100.0, (1, "r2"): 140.0}
    fds |= {(0, "full"): 90.0, (1, "full"): 110.0}
    inputs = _inputs(tmp_path, fds)
    cross_domain_table(**inputs, lora_targets="attn1_attn2")
    table = pd.read_parquet(inputs["parquet"])
    assert table.adaptation.tolist() == ADAPTATIONS
    assert table.params.tolist() == [0, 1234, 99999]
    assert table.params_sd15.tolist() == [0, 398_592, 859_520_964]  # 0.40M r2, 859.52M
    assert table[FD].tolist() == [400.0, 120.0, 100.0]
    assert table.loc[1, f"{FD} text"] == "120.000 ± 28.284"
    assert (table["fid_inception text"] == "n/a").all()
    assert table.n_folds.tolist() == [2, 2, 2]
    markdown = Path(inputs["markdown"]).read_text()
    assert (
        "ClinicalPrior's Table 2" in markdown
        and "| ext | r2 | 1234 | 398592 | n/a | n/a |" in markdown
    )
    inception = "(Inception-v3 pool features, torch-fidelity weights, 299 px)"
    in_domain = "(squeezenet1_1 features of the real-only classifier, 64 px)"
    header = f"FID {inception} | KID {inception} | FD {in_domain} | KID {in_domain} |"
    assert header in markdown


def test_a_record_of_another_fold_stops(tmp_path: Path) -> None:
    fds = dict.fromkeys(((f, a) for f in (0, 1) for a in ADAPTATIONS), 1.0)
    inputs = _inputs(tmp_path, fds)
    Path(inputs["quality"][0]).write_text(json.dumps(_record(1, 1.0)))
    with pytest.raises(MeddapError, match="scores fold 1, not 0"):
        cross_domain_table(**inputs, lora_targets="attn2")
    assert not Path(inputs["parquet"]).exists()


@pytest.mark.parametrize(("name", "rank"), [("none", 0), ("r8", 8), ("full", "full")])
def test_adaptation_names(name: str, rank: int | str) -> None:
    assert adaptation_rank(name) == rank


@pytest.mark.parametrize("name", ["r0", "rank4", "lora", "r-2"])
def test_bad_adaptation_names_stop(name: str) -> None:
    with pytest.raises(MeddapError, match="is not none, r<rank> or full"):
        adaptation_rank(name)
