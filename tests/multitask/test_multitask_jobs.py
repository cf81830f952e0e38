"""MTL's jobs on a phantom fold: modes, training, combining, refining, metrics, tables."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest
import torch

from meddap.common.errors import MeddapError
from meddap.common.labels import CLASSES
from meddap.common.settings import Budget, Multitask
from meddap.multitask.evaluate import multitask_metrics
from meddap.multitask.modes import REFINABLE_PATTERN, TRAINED_PATTERN, parse_mode
from meddap.multitask.predictions import Predictions, combine_predictions, refine_predictions
from meddap.multitask.train import fold_pairs, train_multitask
from meddap.report.multitask_tables import multitask_cell, multitask_table
from tests.conftest import PhantomFold

HOW = Multitask(
    image_size=32,
    channels=[4, 8, 8, 16, 16],
    head_width=8,
    head_hidden=4,
    training=Budget(steps=4, eval_every=2, warmup=1, patience=None),
    batch_size=8,
    learning_rate=1e-2,
    device="cpu",
)
NORMAL, BENIGN = CLASSES.index("normal"), CLASSES.index("benign")


def test_modes_parse_to_their_task_lambda_and_oversampling() -> None:
    mt = parse_mode("mt-l0.85-do")
    assert (mt.task, mt.loss_weight, mt.oversample, mt.refinable) == ("mt", 0.85, True, True)
    seg, cls = parse_mode("seg"), parse_mode("cls-do")
    assert (seg.loss_weight, seg.has_classes, seg.refinable) == (1.0, False, False)
    assert (cls.loss_weight, cls.has_masks, cls.oversample) == (0.0, False, True)
    combined = parse_mode("combined-do")
    assert not combined.trained and combined.parts() == ("seg-do", "cls-do")
    for name in ("mt-l0.50", "mt-l1.5", "mt", "seg-do-do", "both"):
        with pytest.raises(MeddapError, match=f"mode '{name}'"):
            parse_mode(name)
    trained = [m for m in ("mt-l0.4-do", "combined", "cls") if re.fullmatch(TRAINED_PATTERN, m)]
    assert trained == ["mt-l0.4-do", "cls"]
    refinable = [m for m in ("combined-do", "seg", "mt-l1") if re.fullmatch(REFINABLE_PATTERN, m)]
    assert refinable == ["combined-do", "mt-l1"]


@pytest.fixture(scope="module")
def runs(phantom_fold: PhantomFold, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """seg, cls and mt-l0.5-do trained on fold 0 (4 updates at 32 px), combined, refined, scored."""
    out = tmp_path_factory.mktemp("multitask")
    data = {"manifest": str(phantom_fold.manifest), "splits": str(phantom_fold.splits)}
    for mode in ("seg", "cls", "mt-l0.5-do"):
        folder = out / mode
        folder.mkdir()
        train_multitask(
            **data,
            weights=str(folder / "model.safetensors"),
            predictions=str(folder / "predictions.npz"),
            fit_record=str(folder / "fit.json"),
            fold=0,
            backbone="unetpp_ds",
            mode=mode,
            multitask=HOW,
            seed=0,
        )
    (out / "combined").mkdir()
    combine_predictions(
        segmentation=str(out / "seg/predictions.npz"),
        classification=str(out / "cls/predictions.npz"),
        predictions=str(out / "combined/predictions.npz"),
    )
    for mode in ("seg", "cls", "combined", "mt-l0.5-do"):
        refined = []
        if parse_mode(mode).refinable:
            refined = [str(out / mode / "predictions_pr.npz")]
            refine_predictions(
                predictions=str(out / mode / "predictions.npz"), refined=refined[0], mode=mode
            )
        parts = ("seg", "cls") if mode == "combined" else (mode,)
        multitask_metrics(
            **data,
            predictions=str(out / mode / "predictions.npz"),
            refined=refined,
            fits=[str(out / part / "fit.json") for part in parts],
            metrics=str(out / mode / "metrics.json"),
            fold=0,
            backbone="unetpp_ds",
            mode=mode,
            image_size=HOW.image_size,
        )
    return out


def test_training_predicts_the_test_split_and_records_lambda_and_oversampling(
    runs: Path, phantom_fold: PhantomFold
) -> None:
    test = fold_pairs(str(phantom_fold.manifest), str(phantom_fold.splits), 0, "test", 32)
    assert "normal" in test.labels  # normals are kept: their masks are empty
    predicted = Predictions.load(str(runs / "mt-l0.5-do" / "predictions.npz"))
    assert predicted.ids == test.ids and predicted.masks.shape == (len(test), 1, 32, 32)
    assert torch.equal(predicted.classes, predicted.probabilities.argmax(1))
    record = json.loads((runs / "mt-l0.5-do" / "fit.json").read_text())
    assert (record["lambda"], record["oversampling"], len(record["history"])) == (0.5, True, 2)
    assert json.loads((runs / "seg" / "fit.json").read_text())["lambda"] == 1.0
    with pytest.raises(MeddapError, match="trains no network"):
        train_multitask(
            manifest="m", splits="s", weights="w", predictions="p", fit_record="f", fold=0,
            backbone="unetpp_ds", mode="combined", multitask=HOW, seed=0,
        )  # fmt: skip


def test_combined_joins_seg_masks_and_cls_classes_and_pr_makes_them_agree(runs: Path) -> None:
    seg, cls = (Predictions.load(str(runs / m / "predictions.npz")) for m in ("seg", "cls"))
    combined = Predictions.load(str(runs / "combined" / "predictions.npz"))
    assert torch.equal(combined.masks, seg.masks) and torch.equal(combined.classes, cls.classes)
    refined = Predictions.load(str(runs / "combined" / "predictions_pr.npz"))
    empty = refined.masks.flatten(1).sum(1) == 0
    assert torch.equal(empty, refined.classes == NORMAL)  # coherent after PR
    with pytest.raises(MeddapError, match="no PR"):
        refine_predictions(predictions="p", refined="r", mode="seg")


def test_metrics_leave_a_single_task_modes_unmeasured_half_null(runs: Path) -> None:
    seg = json.loads((runs / "seg" / "metrics.json").read_text())
    assert seg["pr"] is None and seg["raw"]["accuracy"] is None and seg["raw"]["f1"] is None
    assert seg["raw"]["balanced_accuracy"] is None and seg["raw"]["recall"] is None
    assert 0 <= seg["raw"]["dice"]["normal"] <= 1 and seg["raw"]["incoherence_rate"] is None
    cls = json.loads((runs / "cls" / "metrics.json").read_text())
    assert cls["raw"]["dice"] is None and 0 <= cls["raw"]["accuracy"] <= 1
    combined = json.loads((runs / "combined" / "metrics.json").read_text())
    assert combined["pr"]["incoherence_rate"] == 0.0
    assert combined["raw"]["dice"]["mean"] == seg["raw"]["dice"]["mean"]
    assert combined["raw"]["accuracy"] == cls["raw"]["accuracy"]
    # compute: every trained mode the same budget; combined is two runs' worth
    assert seg["updates"] == cls["updates"] == HOW.training.steps and seg["best_update"] > 0
    assert combined["updates"] == 2 * HOW.training.steps and combined["best_update"] is None


def test_prediction_files_without_their_arrays_stop_naming_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "predictions.npz"
    bad.write_bytes(b"not an npz")
    with pytest.raises(MeddapError, match=str(bad)):
        Predictions.load(str(bad))


def _record(path: Path, mode: str, fold: int, dice: float, accuracy: float | None) -> str:
    """A minimal multi-task metrics.json (PR section only for refinable modes)."""
    per_class = {c: dice for c in CLASSES}
    f1 = None if accuracy is None else {"weighted": accuracy, **dict.fromkeys(CLASSES, accuracy)}
    scores = {
        "dice": {"mean": dice, **per_class},
        "f1": f1,
        "recall": None if accuracy is None else dict.fromkeys(CLASSES, accuracy),
        "accuracy": accuracy,
        "balanced_accuracy": accuracy,
        "incoherence_rate": 0.25 if accuracy is not None else None,
    }
    refined = {**scores, "incoherence_rate": 0.0} if parse_mode(mode).refinable else None
    record = {"backbone": "unetpp_ds", "mode": mode, "fold": fold, "raw": scores, "pr": refined}
    record |= {"updates": 300, "best_update": 240}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record))
    return str(path)


def test_table5_has_a_pr_row_per_refinable_mode_and_na_for_unmeasured_halves(
    tmp_path: Path,
) -> None:
    metrics = [
        _record(tmp_path / f"{m}{f}.json", m, f, 0.5 + 0.1 * f, None if m == "seg" else 0.8)
        for m in ("seg", "mt-l0.85-do")
        for f in (0, 1)
    ]
    out = {k: str(tmp_path / f"t.{e}") for k, e in [("parquet", "parquet"), ("csv", "csv")]}
    multitask_table(
        metrics=metrics, **out, markdown=str(tmp_path / "t.md"), table="table5", dataset="phantom",
        image_size=32,
    )  # fmt: skip
    table = pd.read_parquet(out["parquet"])
    assert list(zip(table["mode"], table.pr, strict=True)) == [
        ("seg", "no"), ("mt-l0.85-do", "no"), ("mt-l0.85-do", "yes"),
    ]  # fmt: skip
    seg = table.iloc[0]
    assert seg.dice == "55.00 ± 7.07" and seg.accuracy == "n/a" and seg["lambda"] == 1.0
    assert seg.balanced_accuracy == "n/a" and table.iloc[1].balanced_accuracy == "80.00 ± 0.00"
    assert table.iloc[2].incoherence_rate == "0.00 ± 0.00" and table.iloc[1].do == "yes"
    assert table.iloc[1].sources.count(";") == 1
    cell = tmp_path / "cell.json"
    multitask_cell(
        metrics=metrics, cell=str(cell), backbone="unetpp_ds", mode="mt-l0.85-do", pr="yes",
        image_size=32,
    )  # fmt: skip
    row = json.loads(cell.read_text())
    assert row["scores"]["incoherence_rate"]["text"] == "0.00 ± 0.00"
    assert [f["fold"] for f in row["per_fold"]] == [0, 1] and len(row["sources"]) == 4
    with pytest.raises(MeddapError, match="repeats a fold"):
        multitask_table(
            metrics=[*metrics, metrics[0]], **out, markdown=str(tmp_path / "t.md"),
            table="table5", dataset="phantom", image_size=32,
        )  # fmt: skip


def test_a_class_no_test_split_holds_is_na_in_the_per_class_table(tmp_path: Path) -> None:
    metrics = [_record(tmp_path / f"m{f}.json", "cls", f, 0.5, 0.8) for f in (0, 1)]
    for path in metrics:  # as joint_scores writes a split without malignant images
        record = json.loads(Path(path).read_text())
        raw = record["raw"]
        raw["dice"]["malignant"] = raw["f1"]["malignant"] = raw["recall"]["malignant"] = None
        Path(path).write_text(json.dumps(record))
    out = {k: str(tmp_path / f"t.{k}") for k in ("parquet", "csv")}
    multitask_table(
        metrics=metrics, **out, markdown=str(tmp_path / "t.md"), table="per_class",
        dataset="phantom", image_size=32,
    )  # fmt: skip
    row = pd.read_parquet(out["parquet"]).iloc[0]
    assert row.f1_malignant == row.dice_malignant == row.recall_malignant == "n/a"
    assert row.f1_benign == "80.00 ± 0.00"
