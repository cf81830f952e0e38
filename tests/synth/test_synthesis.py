"""Synthesis: nested class-balanced prefixes, per-image seeds, byte-identical regeneration."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from meddap.common.hashing import file_sha256
from meddap.common.images import open_gray
from meddap.common.settings import Synthesis
from meddap.diffusion.pipeline import load_pipeline
from meddap.diffusion.tiny import build_tiny_sd
from meddap.lora.train import adapt_unet, save_adapter
from meddap.synth.generate import (
    class_sequence,
    load_generator,
    plan,
    render,
    synthesize,
    to_gray,
)
from meddap.trainsets.text import prefix_size

SAMPLING = {
    "scheduler": "dpm_multistep",
    "steps": 3,
    "guidance_scale": 7.5,
    "negative_prompt": "",
    "batch_size": 4,
    "resolution": 64,
    "image_size": 48,
}


@pytest.mark.parametrize(
    "counts", [{"benign": 7, "malignant": 4, "normal": 3}, {"benign": 1, "normal": 9}]
)
def test_every_prefix_keeps_the_class_mix(counts: dict[str, int]) -> None:
    total = 3 * sum(counts.values())
    order = class_sequence(counts, total)
    n = sum(counts.values())
    for length in range(1, total + 1):
        seen = Counter(order[:length])
        for label, count in counts.items():
            assert abs(seen[label] - count * length / n) < 1  # never a whole image off
    half = Counter(order[: prefix_size(n, 100)])
    assert dict(half) == counts  # the 100% prefix has exactly the train split's counts


def test_plan_prompts_and_seeds() -> None:
    labels = pd.Series(["benign"] * 4 + ["malignant"] * 2 + ["normal"] * 2)
    rows = plan(labels, 200, seed=0, fold=1, rank=4, adjective="high-contrast")
    assert len(rows) == 16 and list(rows["index"]) == list(range(16))
    assert set(rows.prompt) == {
        "high-contrast ultrasound image of benign tumor in the breast",
        "high-contrast ultrasound image of malignant tumor in the breast",
        "high-contrast ultrasound image of no tumor in the breast",
    }
    assert rows.seed.is_unique
    other = plan(labels, 200, seed=0, fold=1, rank=4, adjective="dark")
    assert not set(rows.seed) & set(other.seed)
    assert list(plan(labels, 100, seed=0, fold=1, rank=4, adjective="none").prompt[:1]) == [
        "ultrasound image of benign tumor in the breast"
    ]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("synth")
    model = root / "tiny-sd"
    build_tiny_sd(model=str(model), seed=0)
    unet = load_pipeline(str(model)).unet
    unet.requires_grad_(False)
    adapt_unet(unet, rank=2, targets="attn2", seed=0, checkpointing=False)
    lora = root / "lora" / "pytorch_lora_weights.safetensors"
    save_adapter(unet, str(lora))
    labels = ["benign"] * 3 + ["malignant"] * 2 + ["normal"]
    ids = [f"x{i}" for i in range(len(labels))]
    pd.DataFrame({"id": ids, "label": labels}).to_parquet(root / "manifest.parquet")
    splits = ["train"] * 5 + ["val"]
    pd.DataFrame({"id": ids, "fold": 0, "split": splits}).to_parquet(root / "splits.parquet")
    return {"root": str(root), "model": str(model), "lora": str(lora)}


def _run(inputs: dict[str, str], out: Path, rank: int = 2) -> None:
    root = Path(inputs["root"])
    synthesize(
        manifest=str(root / "manifest.parquet"),
        splits=str(root / "splits.parquet"),
        lora=inputs["lora"] if rank else [],  # Snakemake's empty input for rank 0
        images=str(out / "images"),
        synth_manifest=str(out / "manifest.parquet"),
        base_model=inputs["model"],
        fold=0,
        rank=rank,
        adjective="bright",
        synthesis=Synthesis.from_params({"pool": 200, "sampling": SAMPLING}),
        seed=3,
    )


def test_synthesis_writes_the_largest_ratio_and_regenerates_identically(
    inputs: dict[str, str], tmp_path: Path
) -> None:
    _run(inputs, tmp_path)
    table = pd.read_parquet(tmp_path / "manifest.parquet")
    assert len(table) == 10  # 200% of 5 train images (the val image is not counted)
    assert Counter(table.label) == {"benign": 6, "malignant": 4}
    assert (table.lora_sha256 == file_sha256(inputs["lora"])).all()
    images = sorted((tmp_path / "images").iterdir())
    assert len(images) == 10 and not (tmp_path / ".images.partial").exists()
    first = {p.name: file_sha256(p) for p in images}
    # A killed job: the last batch is missing from the partial folder; the rerun fills it in.
    partial = tmp_path / ".images.partial"
    (tmp_path / "images").rename(partial)
    for name in ("000008.png", "000009.png"):
        (partial / name).unlink()
    (partial / ".000008.tmp4242.png").write_bytes(b"half a PNG")  # the killed writer's file
    (tmp_path / "manifest.parquet").unlink()
    _run(inputs, tmp_path)
    assert {p.name: file_sha256(p) for p in (tmp_path / "images").iterdir()} == first


def test_rank_0_samples_the_base_model_without_lora(inputs: dict[str, str], tmp_path: Path) -> None:
    _run(inputs, tmp_path, rank=0)
    table = pd.read_parquet(tmp_path / "manifest.parquet")
    assert table.lora_sha256.isna().all() and set(table["rank"]) == {0}
    # The job's first batch again, same rows: CPU kernels may round a batch of 1 differently.
    batch = table.sort_values("index").head(SAMPLING["batch_size"])
    pipe = load_generator(inputs["model"], None, SAMPLING["scheduler"], "cpu")
    sampling = Synthesis.from_params({"pool": 200, "sampling": SAMPLING}).sampling
    expected = to_gray(render(pipe, batch, sampling)[0], SAMPLING["image_size"])
    with open_gray(batch.image_path.iloc[0]) as written:
        assert np.array_equal(np.asarray(written), expected)
