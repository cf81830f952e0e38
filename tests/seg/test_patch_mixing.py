"""DiffBoost's patch mixing: the transform, the trainset names, the rows and a tiny training run."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from PIL import Image, ImageOps

from meddap.common.atomic import write_json
from meddap.common.errors import MeddapError
from meddap.common.settings import Segmentation
from meddap.run.config import validate_config
from meddap.seg.augment import (
    PARENT,
    RandPatchMixd,
    augment,
    augmenter,
    cell_edges,
    with_parents,
)
from meddap.seg.data import Pairs, load_pairs
from meddap.seg.tasks import build_task
from meddap.seg.train import _with_synthetic, train_segmenter
from meddap.trainsets import SEGMENTER, parse
from meddap.trainsets.pairs import PairSet, mixing_token
from tests.conftest import PhantomFold
from tests.report.test_seg_ratio_table import _table
from tests.seg.test_seg_train import SETTINGS as SEG_SETTINGS
from tests.seg.test_seg_train import SHORT

REPO = Path(__file__).resolve().parents[2]
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
SIZE = 12


def _images(seed: int, n: int = 1, size: int = SIZE) -> torch.Tensor:
    """Random (n, 1, size, size) images in 0.1..0.9 (no two pixels of two draws equal)."""
    generator = torch.Generator().manual_seed(seed)
    return 0.1 + 0.8 * torch.rand(n, 1, size, size, generator=generator)


def _mix(mix_lambda: float, patches: int, seed: int, size: int = SIZE) -> dict:
    """One mixed sample of a random synthetic image, its random parent and a random mask."""
    synthetic, parent = _images(1, size=size)[0], _images(2, size=size)[0]
    mask = (_images(3, size=size)[0] > 0.5).float()
    transform = RandPatchMixd("image", mix_lambda, patches).set_random_state(seed)
    out = transform({"image": synthetic, PARENT: parent, "mask": mask})
    return {"out": out, "synthetic": synthetic, "parent": parent, "mask": mask}


# --- the transform ----------------------------------------------------------------------------


def test_lambda_0_keeps_the_synthetic_image_and_lambda_1_gives_the_real_one() -> None:
    none, every = _mix(0.0, 4, seed=0), _mix(1.0, 4, seed=0)
    assert torch.equal(none["out"]["image"], none["synthetic"])
    assert torch.equal(every["out"]["image"], every["parent"])
    assert PARENT not in none["out"] and set(every["out"]) == {"image", "mask"}


@pytest.mark.parametrize(("size", "patches"), [(12, 4), (12, 3), (10, 4), (12, 2)])
def test_cells_are_whole_blocks_of_one_source_and_the_mask_is_unchanged(
    size: int, patches: int
) -> None:
    edges = cell_edges(size, patches)
    assert edges[0] == 0 and edges[-1] == size and len(edges) == patches + 1
    kinds = set()
    for seed in range(5):
        sample = _mix(0.5, patches, seed, size)
        image = sample["out"]["image"]
        assert torch.equal(sample["out"]["mask"], sample["mask"])
        for r0, r1 in zip(edges[:-1], edges[1:], strict=True):
            for c0, c1 in zip(edges[:-1], edges[1:], strict=True):
                cell = (..., slice(r0, r1), slice(c0, c1))
                real = torch.equal(image[cell], sample["parent"][cell])
                fake = torch.equal(image[cell], sample["synthetic"][cell])
                assert real != fake  # exactly one source fills the whole cell
                kinds.add(real)
    assert kinds == {True, False}


@pytest.mark.parametrize("mix_lambda", [0.25, 0.5, 0.75])
def test_the_share_of_real_cells_is_lambda_over_many_draws(mix_lambda: float) -> None:
    transform = RandPatchMixd("image", mix_lambda, 8).set_random_state(7)
    shares = []
    for _ in range(300):
        transform.randomize()
        shares.append(transform.cells.mean())
    assert np.mean(shares) == pytest.approx(mix_lambda, abs=0.02)
    assert np.std(shares) > 0  # drawn anew every call


def test_the_same_seed_draws_the_same_cells_and_another_seed_others() -> None:
    first, again, other = _mix(0.5, 4, 11), _mix(0.5, 4, 11), _mix(0.5, 4, 12)
    assert torch.equal(first["out"]["image"], again["out"]["image"])
    assert not torch.equal(first["out"]["image"], other["out"]["image"])


def test_batches_mix_synthetic_rows_afresh_and_leave_real_rows_unchanged() -> None:
    n_real, n_synthetic = 4, 8
    real, synthetic, parents = _images(1, n_real), _images(2, n_synthetic), _images(3, n_synthetic)
    masks = (_images(4, n_real + n_synthetic) > 0.5).float()
    pairs = Pairs(
        [f"x{i}" for i in range(n_real + n_synthetic)],
        ["benign"] * (n_real + n_synthetic),
        torch.cat([real, synthetic]),
        masks,
        torch.cat([real, parents]),  # a real row's parent is itself
    )
    packed = with_parents(pairs)
    assert packed.images.shape == (n_real + n_synthetic, 2, SIZE, SIZE)
    transform = augmenter(parse("mask-real-1to2-mix0.5p4"), 0.5)
    images, out_masks = augment(transform, packed.images, packed.masks, seed=5)
    assert images.shape == (n_real + n_synthetic, 1, SIZE, SIZE)
    assert torch.equal(images[:n_real], real) and torch.equal(out_masks, masks)
    mixed = images[n_real:]
    assert not torch.equal(mixed, synthetic) and not torch.equal(mixed, parents)
    assert torch.all((mixed == synthetic) | (mixed == parents))
    again, _ = augment(transform, packed.images, packed.masks, seed=5)
    later, _ = augment(transform, packed.images, packed.masks, seed=6)
    assert torch.equal(again, images) and not torch.equal(later, images)
    # through the training task (unchanged tasks.py): the loop's generator seeds every batch
    how = Segmentation.from_params(_SETTINGS)
    task = build_task("unet", packed, packed, how, transform, torch.device("cpu"))
    batches = []
    for _ in range(2):
        order = torch.Generator().manual_seed(0)
        batches.append([task.batch(index, order) for index in task.indices(order)])
    assert all(b.inputs.shape[1] == 1 for b in batches[0])
    for one, two in zip(*batches, strict=True):
        assert torch.equal(one.inputs, two.inputs)


def test_mixing_without_a_parent_stops() -> None:
    transform = RandPatchMixd("image", 0.5, 4)
    with pytest.raises(MeddapError, match="parent's pixels"):
        transform({"image": _images(0)[0], "mask": _images(1)[0]})
    with pytest.raises(MeddapError, match="real parents' pixels"):
        with_parents(Pairs(["a"], ["benign"], _images(0), _images(1)))


def test_only_mixed_sets_get_the_mixer() -> None:
    assert augmenter(parse("mask-real-1to2"), 0.5) is None
    assert augmenter(parse("real"), 0.5) is None
    (step,) = augmenter(parse("edge-real-0to1-mix0.25p8"), 0.5).transforms
    assert (step.mix_lambda, step.patches) == (0.25, 8)


# --- names ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "fields"),
    [
        ("mask-real-1to2-mix0.5p4", ("mask-real", 1, 2, 0.5, 4)),
        ("edge-real-0to1-mix0.25p8", ("edge-real", 0, 1, 0.25, 8)),
        ("mask-real-1to8-mix0.75p2", ("mask-real", 1, 8, 0.75, 2)),
        ("mask-real-1to2", ("mask-real", 1, 2, None, None)),
        ("mask-clinical-1to1", ("mask-clinical", 1, 1, None, None)),
    ],
)
def test_names_parse_and_round_trip(name: str, fields: tuple) -> None:
    wanted = parse(name)
    assert isinstance(wanted, PairSet)
    found = (wanted.setting, wanted.real, wanted.synthetic, wanted.mix_lambda, wanted.mix_patches)
    assert found == fields and wanted.mixed == (fields[3] is not None)
    assert wanted.name == name
    assert wanted.augmentations == ()  # no conventional augmentation
    if wanted.mixed:
        assert name.endswith(mixing_token(wanted.mix_lambda, wanted.mix_patches))


def test_mixing_a_clinical_source_stops_in_one_sentence() -> None:
    with pytest.raises(MeddapError) as err:
        parse("mask-clinical-1to2-mix0.5p4")
    message = str(err.value)
    assert "mask source 'clinical' has none" in message and "\n" not in message


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("mask-real-1to2-mix1.0p4", "lambda '1.0' is not a decimal strictly between 0 and 1"),
        ("mask-real-1to2-mix0p4", "lambda '0' is not a decimal strictly between 0 and 1"),
        ("mask-real-1to2-mix0.5.5p4", "lambda '0.5.5' is not a decimal"),
        ("mask-real-1to2-mix0.5p1", "grid 1 is not an integer of at least 2"),
        ("mask-real-1to2-mix0.5p0", "grid 0 is not an integer of at least 2"),
        ("mask-real-1to2-mix0.50p4", "the one name of lambda 0.5 and grid 4 is mix0.5p4"),
        ("mask-real-1to2-mix.5p4", "is mix0.5p4"),
        ("mask-real-1to2-mix0.5p04", "is mix0.5p4"),
    ],
)
def test_invalid_lambda_or_grid_stops_in_one_sentence(name: str, why: str) -> None:
    with pytest.raises(MeddapError) as err:
        parse(name)
    assert why in str(err.value) and repr(name) in str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("value", "patches"), [(0.0, 4), (1.0, 4), (1e-5, 4), (0.5, 1), (0.5, 2.0)]
)
def test_mixing_tokens_need_a_decimal_lambda_and_an_integer_grid(
    value: float, patches: int
) -> None:
    with pytest.raises(MeddapError, match="patch mixing"):
        mixing_token(value, patches)


def test_malformed_mixing_suffixes_are_no_trainset() -> None:
    for name in ("mask-real-1to2-mix", "mask-real-1to2-mix0.5", "mask-real-1to2-mixp4"):
        assert PairSet.parse(name) is None
        with pytest.raises(MeddapError, match="is none of the kinds of training set"):
            parse(name)


# --- config -----------------------------------------------------------------------------------


def _config() -> dict:
    return yaml.safe_load((REPO / "config" / "config.yaml").read_text())


def test_the_configs_name_mixing_points_and_bad_ones_stop() -> None:
    config = _config()
    assert config["segmentation"]["pairs"]["mixing"] == {"lambdas": [0.5], "patches": [4]}
    paper = yaml.safe_load((REPO / "config" / "paper.yaml").read_text())
    mixing = paper["segmentation"]["pairs"]["mixing"]
    assert mixing == {"lambdas": [0.25, 0.5, 0.75], "patches": [4]}
    off = copy.deepcopy(config)
    off["segmentation"]["pairs"]["mixing"] = {"lambdas": [], "patches": []}
    validate_config(off, SCHEMA)
    for key, values, why in [
        ("lambdas", [1.0], "mixing.lambdas.0'"),
        ("lambdas", [0.0], "mixing.lambdas.0'"),
        ("lambdas", [1e-5], "is not a decimal strictly between 0 and 1"),
        ("patches", [1], "mixing.patches.0'"),
        ("patches", [2.5], "mixing.patches.0'"),
    ]:
        bad = copy.deepcopy(config)
        bad["segmentation"]["pairs"]["mixing"][key] = values
        with pytest.raises(MeddapError) as err:
            validate_config(bad, SCHEMA)
        assert "segmentation.pairs.mixing" in str(err.value) and why in str(err.value)
    missing = copy.deepcopy(config)
    del missing["segmentation"]["pairs"]["mixing"]
    with pytest.raises(MeddapError, match="segmentation.pairs.mixing"):
        validate_config(missing, SCHEMA)


# --- training-set rows ------------------------------------------------------------------------


def _gray(path: Path, pixels: np.ndarray) -> str:
    Image.fromarray(pixels.astype(np.uint8)).save(path)
    return str(path)


def _files(tmp_path: Path, prefix: str, n: int, shape: tuple[int, int]) -> dict[str, list[str]]:
    """n random grayscale images and binary masks of `shape` as PNGs: their paths."""
    rng = np.random.default_rng(len(prefix) + n)
    images = [_gray(tmp_path / f"{prefix}{i}.png", rng.integers(0, 256, shape)) for i in range(n)]
    masks = [
        _gray(tmp_path / f"{prefix}{i}_m.png", rng.integers(0, 2, shape) * 255) for i in range(n)
    ]
    return {"image_path": images, "mask_path": masks}


def _fold(tmp_path: Path, n: int = 3) -> tuple[pd.DataFrame, str]:
    """A fold's real train rows (non-square images) and a real-mask pool of 2 pairs per row."""
    train = pd.DataFrame(
        {"id": [f"r{i}" for i in range(n)], "label": "benign", **_files(tmp_path, "r", n, (20, 30))}
    )
    total = 2 * n
    pool = pd.DataFrame(
        {
            "id": [f"s{i}" for i in range(total)],
            "label": "benign",
            **_files(tmp_path, "s", total, (16, 16)),
            "index": range(total),
            "fold": 0,
            "setting": "mask-real",
            "mask_source": "real",
            "parent_id": [f"r{i % n}" for i in range(total)],
        }
    )
    path = tmp_path / "manifest.parquet"
    pool.sample(frac=1, random_state=0).to_parquet(path)
    return train, str(path)


def test_mixed_rows_carry_their_parents_real_image_path(tmp_path: Path) -> None:
    train, pool = _fold(tmp_path)
    rows = parse("mask-real-1to2-mix0.5p4").rows(pool, 0, train, SEGMENTER)
    assert list(rows["id"]) == [f"s{i}" for i in range(6)]
    assert list(rows["parent_id"]) == ["r0", "r1", "r2"] * 2
    expected = [str(tmp_path / f"r{i}.png") for i in (0, 1, 2)] * 2
    assert list(rows["parent_image_path"]) == expected
    plain = parse("mask-real-1to2").rows(pool, 0, train, SEGMENTER)
    assert "parent_image_path" not in plain.columns  # unmixed sets are as before
    with pytest.raises(MeddapError, match="'s2' has no parent among the fold's train images"):
        parse("mask-real-1to2-mix0.5p4").rows(pool, 0, train.head(2), SEGMENTER)


def test_parents_load_as_the_centre_crop_the_pool_was_drawn_from(tmp_path: Path) -> None:
    train, pool = _fold(tmp_path)
    rows = parse("mask-real-0to1-mix0.5p4").rows(pool, 0, train, SEGMENTER)
    pairs = load_pairs(rows, 8)
    assert pairs.parents is not None and pairs.parents.shape == (3, 1, 8, 8)
    with Image.open(tmp_path / "r1.png") as im:
        fitted = np.asarray(ImageOps.fit(im, (8, 8), Image.Resampling.BILINEAR))
    assert torch.equal(pairs.parents[1, 0], torch.from_numpy(fitted.copy()).float() / 255)
    squashed = load_pairs(train, 8).images[1, 0]  # the real rows' own loading squashes
    assert not torch.equal(pairs.parents[1, 0], squashed)
    real = load_pairs(train, 8)
    mixed, n_real = _with_synthetic(real, pool, 0, parse("mask-real-1to2-mix0.5p4"), 8, train)
    assert n_real == 3 and len(mixed) == 9 and mixed.parents is not None
    assert torch.equal(mixed.parents[:3], real.images)  # real rows mix with themselves
    assert torch.equal(mixed.parents[3:6], pairs.parents)
    plain, _ = _with_synthetic(real, pool, 0, parse("mask-real-1to2"), 8, train)
    assert plain.parents is None


# --- a training run and the ratio table -------------------------------------------------------

_SETTINGS = {**SEG_SETTINGS, "channels": [4, 4, 8, 8, 8], **SHORT}


def test_a_mixed_set_trains_and_records_its_mixing(
    phantom_fold: PhantomFold, tmp_path: Path
) -> None:
    train = phantom_fold.rows("train")
    train = train[train.label != "normal"].reset_index(drop=True)
    pool = pd.DataFrame(
        {
            "id": [f"syn-{i}" for i in range(len(train))],
            "label": train.label,
            "image_path": train.image_path,  # stand-ins for generated images
            "mask_path": train.mask_path,
            "index": range(len(train)),
            "fold": 0,
            "setting": "mask-real",
            "mask_source": "real",
            "parent_id": train.id,
        }
    )
    pool.to_parquet(tmp_path / "pool.parquet")
    files = {k: str(tmp_path / k) for k in ("weights", "scores", "fit_record")}
    train_segmenter(
        manifest=str(phantom_fold.manifest),
        splits=str(phantom_fold.splits),
        **files,
        fold=0,
        model="unet",
        trainset="mask-real-1to1-mix0.5p4",
        segmentation=Segmentation.from_params(_SETTINGS),
        seed=0,
        synthetic=str(tmp_path / "pool.parquet"),
    )
    record = json.loads(Path(files["fit_record"]).read_text())
    assert record["mixing"]["lambda"] == 0.5 and record["mixing"]["patches"] == 4
    assert record["n_real"] == record["n_synthetic"] == len(train)


def _metrics(root: Path, runs: dict[str, tuple[float, float]]) -> list[str]:
    paths = []
    for trainset, (val, test) in runs.items():
        for fold in range(2):
            record = {"model": "unet", "trainset": trainset, "fold": fold}
            record |= {"val": {"dice": {"mean": val}}, "test": {"dice": {"mean": test}}}
            record |= {"external": {}, "updates": 600, "best_update": 400}
            path = root / f"{trainset}_{fold}.json"
            write_json(record, path)
            paths.append(str(path))
    return paths


def test_the_ratio_table_shows_mixed_sets_as_rows_with_their_own_val_pick(tmp_path: Path) -> None:
    runs = {
        "real": (0.5, 0.5),
        "mask-real-1to1": (0.6, 0.6),
        "mask-real-1to2": (0.7, 0.6),  # unmixed pick
        "mask-real-1to1-mix0.5p4": (0.8, 0.6),  # pick of mixing 0.5/4, above every unmixed one
        "mask-real-1to2-mix0.5p4": (0.65, 0.6),
        "mask-real-1to2-mix0.25p2": (0.55, 0.6),  # alone in its mixing: its own pick
    }
    table, markdown, csv = _table(tmp_path, _metrics(tmp_path, runs))
    assert list(zip(table.trainset, table.mixing, strict=True)) == [
        ("real", "-"),
        ("mask-real-1to1", "-"),
        ("mask-real-1to2", "-"),
        ("mask-real-1to2-mix0.25p2", "λ=0.25 p=2"),
        ("mask-real-1to1-mix0.5p4", "λ=0.5 p=4"),
        ("mask-real-1to2-mix0.5p4", "λ=0.5 p=4"),
    ]
    picks = set(table.trainset[table.chosen_on_val])
    assert picks == {"mask-real-1to2", "mask-real-1to1-mix0.5p4", "mask-real-1to2-mix0.25p2"}
    assert "| unet | mask-real | 1:1 mix λ=0.5 p=4 (val pick) | 2 |" in markdown
    assert "| unet | mask-real | 1:2 mix λ=0.5 p=4 | 2 |" in markdown
    assert "| unet | mask-real | 1:2 (val pick) | 2 |" in markdown
    pd.testing.assert_frame_equal(pd.read_csv(csv), table, check_dtype=False)
