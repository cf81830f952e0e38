"""Duplicate detection on the BUSI sample and the phantom truth, linkage, mask IoU, policies."""

from __future__ import annotations

import itertools
import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from scipy.ndimage import gaussian_filter
from skimage.metrics import structural_similarity

from meddap.common.errors import MeddapError
from meddap.common.images import open_gray
from meddap.common.settings import Curation, CurationSearch
from meddap.data.align import _place, overlap_slices, prepare
from meddap.data.curation import (
    DUPLICATE_COLUMNS,
    MASK_BAND,
    POLICIES,
    align_pair,
    apply_policy,
    curate,
    find_duplicates,
    find_duplicates_job,
)
from meddap.data.phantom import generate_phantom
from meddap.data.truth import (
    accepted_pairs,
    folder_manifest,
    neighbour_pairs,
    planted_pairs,
    precision_recall,
)

KNOWN_GROUPS = [
    {"benign_131", "benign_42", "malignant_51"},
    {"benign_139", "benign_157", "benign_65", "benign_99"},
    {"benign_406", "malignant_94"},
    {"benign_433", "malignant_145"},
]


@pytest.fixture(scope="module")
def manifest(busi_sample: Path) -> pd.DataFrame:
    rows = []
    for path in sorted(busi_sample.glob("*/*.png")):
        name = re.fullmatch(r"(\w+) \((\d+)\)\.png", path.name)
        if name:
            rows.append(
                {
                    "id": f"{name[1]}_{name[2]}",
                    "dataset": "busi",
                    "label": name[1],
                    "image_path": str(path),
                    "mask_path": str(path.with_name(f"{path.stem}_mask.png")),
                    "patient_id": None,
                }
            )
    return pd.DataFrame(rows)


SIMILARITY = CurationSearch(
    image_size=128, candidate_size=16, candidates=6, threshold=0.8, mask_iou=0.6
)


@pytest.fixture(scope="module")
def duplicates(manifest: pd.DataFrame) -> pd.DataFrame:
    return find_duplicates(manifest, SIMILARITY)


def groups_of(duplicates: pd.DataFrame) -> list[set[str]]:
    accepted = duplicates[duplicates["accepted"]]
    return [set(g["id_a"]) | set(g["id_b"]) for _, g in accepted.groupby("group", sort=True)]


def test_finds_exactly_the_known_duplicate_groups(duplicates: pd.DataFrame) -> None:
    assert groups_of(duplicates) == KNOWN_GROUPS  # numbered by smallest member id
    known = {tuple(sorted(p)) for g in KNOWN_GROUPS for p in itertools.combinations(g, 2)}
    assert accepted_pairs(duplicates) == known  # pairwise precision and recall 1
    rejected = duplicates[~duplicates["accepted"]]
    assert duplicates.loc[duplicates["accepted"], "score"].min() > 0.85
    assert rejected["score"].max() < 0.4


def test_a_crop_scores_near_one_after_alignment(manifest: pd.DataFrame) -> None:
    paths = manifest.set_index("id")["image_path"]
    with open_gray(paths["benign_1"]) as gray:
        box = (60, 40, 60 + int(gray.width * 0.7), gray.height)  # a crop, as malignant 65 / 66
        crop = gray.crop(box)
        prepared = [prepare(gray, 128, "a"), prepare(crop, 128, "crop")]
        squashed = [np.asarray(image.resize((128, 128))) for image in (gray, crop)]
    found = align_pair(prepared, 0, 1, True)
    assert found.score > 0.9 and found.overlap == 1.0
    assert found.scale == pytest.approx((1.0, 1.0), abs=0.01)
    assert found.shift == pytest.approx(box[:2], abs=3)
    assert structural_similarity(*squashed, data_range=255) < 0.5  # unaligned, as before
    assert align_pair(prepared, 1, 0, True).score == pytest.approx(found.score)


def test_table_layout(duplicates: pd.DataFrame) -> None:
    assert list(duplicates.columns) == list(DUPLICATE_COLUMNS)
    assert (duplicates["id_a"] < duplicates["id_b"]).all()
    assert duplicates.equals(
        duplicates.sort_values(["group", "id_a", "id_b"], ignore_index=True, na_position="last")
    )
    assert duplicates["same_label"].dtype == bool and duplicates["group"].dtype == "Int64"
    assert duplicates["group"].isna().eq(~duplicates["accepted"]).all()
    pair = duplicates.set_index(["id_a", "id_b"])
    assert pair.loc[("benign_433", "malignant_145"), "score"] == pytest.approx(1.0)
    assert not pair.loc[("benign_433", "malignant_145"), "same_label"]
    assert pair.loc[("benign_139", "benign_157"), "same_label"]


def test_mask_iou_after_nearest_resize(manifest: pd.DataFrame, duplicates: pd.DataFrame) -> None:
    paths = manifest.set_index("id")["mask_path"]

    def mask(name: str) -> np.ndarray:
        with Image.open(paths[name]) as img:
            return np.asarray(img.convert("L").resize((128, 128), Image.Resampling.NEAREST)) > 0

    a, b = mask("benign_42"), mask("malignant_51")
    want = (a & b).sum() / (a | b).sum()
    got = duplicates.set_index(["id_a", "id_b"]).loc[("benign_42", "malignant_51"), "mask_iou"]
    assert got == pytest.approx(want, abs=0.05)  # aligned: shifted by at most a pixel
    accepted = duplicates[duplicates["accepted"]]
    assert accepted["mask_iou"].between(0, 1).all()
    below = duplicates["verdict"] == "below_threshold"
    assert duplicates.loc[below, "mask_iou"].isna().all()  # masks are compared above it only


def write_image(path: Path, array: np.ndarray) -> str:
    Image.fromarray(np.clip(array, 0, 255).astype(np.uint8)).save(path)
    return str(path)


def synthetic_manifest(tmp_path: Path) -> pd.DataFrame:
    """x0 ~ x1 ~ x2 chain (x0 and x2 unrelated), x3 unrelated; masks: x0, x1 empty; x2 none."""
    rng = np.random.default_rng(0)
    x0, x2, x3 = 128 + 600 * gaussian_filter(rng.normal(size=(3, 48, 48)), sigma=(0, 2, 2))
    images = [x0, (x0 + x2) / 2, x2, x3]
    empty = write_image(tmp_path / "empty_mask.png", np.zeros((48, 48)))
    full = write_image(tmp_path / "full_mask.png", np.full((48, 48), 255))
    return pd.DataFrame(
        {
            "id": ["x0", "x1", "x2", "x3"],
            "label": ["benign", "benign", "malignant", "normal"],
            "image_path": [write_image(tmp_path / f"x{k}.png", x) for k, x in enumerate(images)],
            "mask_path": [empty, empty, None, full],
        }
    )


def test_groups_do_not_chain(tmp_path: Path) -> None:
    manifest = synthetic_manifest(tmp_path)
    similarity = CurationSearch(
        image_size=48, candidate_size=16, candidates=3, threshold=1.0, mask_iou=0.6
    )
    scores = find_duplicates(manifest, similarity).set_index(["id_a", "id_b"])["score"]
    threshold = min(scores["x0", "x1"], scores["x1", "x2"]) - 1e-6
    assert scores["x0", "x2"] < threshold
    found = find_duplicates(manifest, CurationSearch(48, 16, 3, threshold, 0.6))
    pairs = accepted_pairs(found)
    assert len(pairs) == 1 and pairs < {("x0", "x1"), ("x1", "x2")}  # complete linkage
    same = found.set_index(["id_a", "id_b"])["same_label"]
    assert same["x0", "x1"] and not same["x1", "x2"]
    assert found["mask_iou"].isna().all()  # both masks empty; one mask missing
    verdict = found.set_index(["id_a", "id_b"])["verdict"]
    refused = {("x0", "x1"), ("x1", "x2")} - pairs  # linked, but its images are not grouped
    assert verdict[next(iter(refused))] == "linkage" and verdict["x0", "x2"] == "below_threshold"


def test_no_accepted_pair_gives_no_group(tmp_path: Path) -> None:
    found = find_duplicates(synthetic_manifest(tmp_path), CurationSearch(48, 16, 3, 1.0, 0.6))
    assert not found["accepted"].any() and found["group"].isna().all()
    assert list(found.columns) == list(DUPLICATE_COLUMNS)
    kept = apply_policy(synthetic_manifest(tmp_path), found, "drop_all")
    assert len(kept) == 4


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("image_size", 8),
        ("candidate_size", 3),
        ("candidates", 0),
        ("threshold", 0.0),
        ("mask_iou", 1.5),
    ],
)
def test_bad_similarity_names_the_config_key(tmp_path: Path, key: str, value: float) -> None:
    similarity = CurationSearch(**{**SIMILARITY.params(), key: value})
    with pytest.raises(MeddapError, match=f"curation.{key}"):
        find_duplicates(synthetic_manifest(tmp_path), similarity)


def test_phantom_truth_precision_and_recall(tmp_path: Path) -> None:
    """Planted copies (near copy, crop, rescaled) found, neighbour frames of a lesion not."""
    root = tmp_path / "phantom"
    generate_phantom(
        root,
        patients=60,
        image_size=128,
        duplicates=9,
        conflicting=2,
        second_mask_fraction=0.1,
        seed=0,
    )
    found = find_duplicates(folder_manifest(root), SIMILARITY)
    truth = pd.read_csv(root / "duplicates_truth.csv")
    assert set(truth["kind"]) == {"near_copy", "crop", "rescaled"}
    detected = accepted_pairs(found)
    assert precision_recall(detected, planted_pairs(root)) == (1.0, 1.0)
    frames = neighbour_pairs(root)
    assert len(frames) == 9 and not frames & detected


def test_policies(manifest: pd.DataFrame, duplicates: pd.DataFrame) -> None:
    members = set().union(*KNOWN_GROUPS)
    kept = {p: apply_policy(manifest, duplicates, p) for p in POLICIES}
    assert {p: len(t) for p, t in kept.items()} == {
        "none": 23,
        "drop_all": 12,
        "keep_one_consistent": 13,
    }
    assert not members & set(kept["drop_all"]["id"])
    # only the all-benign quadruplet keeps one member: its smallest id
    assert members & set(kept["keep_one_consistent"]["id"]) == {"benign_139"}
    none = kept["none"].set_index("id")["duplicate_group"]
    assert none.dtype == "Int64"
    assert none[["benign_131", "benign_139", "benign_406", "benign_433"]].tolist() == [0, 1, 2, 3]
    assert none.isna().sum() == 23 - len(members)
    assert list(kept["none"].columns) == [*manifest.columns, "duplicate_group"]


def test_unknown_policy_names_the_config_key(
    manifest: pd.DataFrame, duplicates: pd.DataFrame
) -> None:
    with pytest.raises(MeddapError, match="curation.policy"):
        apply_policy(manifest, duplicates, "keep_all")


def test_unreadable_image_names_the_file(tmp_path: Path) -> None:
    manifest = synthetic_manifest(tmp_path)
    Path(manifest.loc[2, "image_path"]).write_bytes(b"truncated")
    with pytest.raises(MeddapError, match="x2.png"):
        find_duplicates(manifest, CurationSearch(48, 16, 3, 0.8, 0.6))


def test_jobs_write_the_tables_and_log_what_curation_did(
    tmp_path: Path, manifest: pd.DataFrame, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="meddap.data.curation")
    manifest.to_parquet(tmp_path / "manifest.parquet", index=False)
    paths = {n: str(tmp_path / f"{n}.parquet") for n in ("manifest", "duplicates", "curated")}
    similarity = SIMILARITY
    find_duplicates_job(
        manifest=paths["manifest"], duplicates=paths["duplicates"], similarity=similarity
    )
    curate(**paths, curation=Curation(policy="drop_all"))
    assert groups_of(pd.read_parquet(paths["duplicates"])) == KNOWN_GROUPS
    curated = pd.read_parquet(paths["curated"])
    assert len(curated) == 12 and curated["duplicate_group"].isna().all()
    n_groups = len(KNOWN_GROUPS)
    assert f"{len(manifest)} images: " in caplog.text and f"in {n_groups} groups" in caplog.text
    removed = manifest[~manifest.id.isin(curated.id)].label.value_counts().sort_index().to_dict()
    assert f"policy drop_all keeps 12 of {len(manifest)} images; removed per class: {removed}" in (
        caplog.text
    )


def test_job_names_a_manifest_without_required_columns(tmp_path: Path) -> None:
    path = tmp_path / "manifest.parquet"
    pd.DataFrame({"id": ["a"], "label": ["benign"]}).to_parquet(path)
    with pytest.raises(MeddapError, match="manifest.parquet lacks .*image_path"):
        find_duplicates_job(
            manifest=str(path),
            duplicates=str(tmp_path / "d.parquet"),
            similarity=SIMILARITY,
        )


def test_an_image_placed_outside_the_other_has_an_empty_overlap() -> None:
    """A portrait b shifted past a landscape a: both slices empty, never wrapped round."""
    a, b = np.zeros((60, 100)), np.zeros((100, 60))
    for offset in ((-105, 0), (0, -65), (70, -80)):  # b above, left of, below-left of a
        in_a, in_b = overlap_slices(a.shape, b.shape, offset)
        assert a[in_a].size == b[in_b].size == 0, offset
    in_a, in_b = overlap_slices((60, 100), (100, 60), (10, 20))
    assert a[in_a].shape == b[in_b].shape == (50, 60)
    rng = np.random.default_rng(0)
    portrait, landscape = rng.uniform(0, 255, (120, 40)), rng.uniform(0, 255, (40, 120))
    score, _, overlap = _place(landscape, portrait)  # the BUS-BRA pair that crashed curation
    assert -1.0 <= score <= 1.0 and 0.0 <= overlap <= 1.0


def _zoomed_copies(manifest: pd.DataFrame, out: Path) -> tuple[pd.DataFrame, set]:
    """Every other sample image's 1.20-1.32x zoomed crop (resized back to its size), with its
    mask alike: the manifest with them, and the (original, copy) pairs."""
    rows, truth = [], set()
    for k, row in enumerate(manifest.iloc[::2].itertuples()):
        zoom = 1.2 + 0.1 * (k % 2) + 0.01 * (k % 3)
        copies = []
        for path in (row.image_path, row.mask_path):
            with Image.open(path) as image:
                width, height = image.size
                size = round(width / zoom), round(height / zoom)
                x, y = (k * 13) % (width - size[0] + 1), (k * 7) % (height - size[1] + 1)
                crop = image.convert("L").crop((x, y, x + size[0], y + size[1]))
                method = Image.Resampling.BICUBIC if path == row.image_path else Image.NEAREST
                copies.append(out / f"zoom_{k}_{len(copies)}.png")
                crop.resize((width, height), method).save(copies[-1])
        rows.append({"id": f"zoom_{k:02d}", "label": row.label, "image_path": str(copies[0])})
        rows[-1]["mask_path"] = str(copies[1])
        truth.add((row.id, f"zoom_{k:02d}"))
    return pd.concat([manifest, pd.DataFrame(rows)], ignore_index=True), truth


def test_zoomed_copies_up_to_1_3x_are_found(tmp_path: Path, manifest: pd.DataFrame) -> None:
    """Rescaled crops of the real sample (BUSI's missed copies: 1.16-1.24x) score as copies."""
    augmented, truth = _zoomed_copies(manifest, tmp_path)
    found = find_duplicates(augmented, SIMILARITY).set_index(["id_a", "id_b"])
    scores = found["score"].reindex(sorted(truth))
    assert (scores >= SIMILARITY.threshold).sum() >= 0.8 * len(truth), scores
    zoomed = found.loc[scores.index[scores >= SIMILARITY.threshold], "scale_x"]
    assert zoomed.between(1 / 1.35, 1 / 1.18).all()  # placed at their zoom
    accepted = found.loc[scores.index, "verdict"].isin(["accepted", "linkage"])
    assert accepted.sum() >= 0.8 * len(truth)  # linkage: a copy of a group member only


def test_masks_that_disagree_veto_a_near_threshold_pair(tmp_path: Path) -> None:
    """Two looks of one scene scoring just above the threshold: a copy if their lesions
    overlap, neighbouring frames if they do not."""
    rng = np.random.default_rng(5)
    scene = 128 + 600 * gaussian_filter(rng.normal(size=(64, 64)), 2)
    looks = [
        write_image(tmp_path / f"f{k}.png", scene + rng.normal(0, 12, scene.shape)) for k in (0, 1)
    ]
    lesion = np.zeros((64, 64))
    lesion[20:40, 8:28] = 255
    masks = {
        "same": [write_image(tmp_path / "m.png", lesion)] * 2,
        "apart": [
            write_image(tmp_path / "m.png", lesion),
            write_image(tmp_path / "n.png", lesion[:, ::-1]),
        ],
    }
    manifest = pd.DataFrame({"id": ["f0", "f1"], "label": ["benign"] * 2, "image_path": looks})
    probe = find_duplicates(manifest.assign(mask_path=None), CurationSearch(64, 16, 1, 1.0, 0.6))
    similarity = CurationSearch(64, 16, 1, float(probe["score"].iloc[0]) - 0.05, 0.6)
    same = find_duplicates(manifest.assign(mask_path=masks["same"]), similarity).iloc[0]
    apart = find_duplicates(manifest.assign(mask_path=masks["apart"]), similarity).iloc[0]
    assert same["verdict"] == "accepted" and same["mask_iou"] > 0.9
    assert apart["verdict"] == "masks_disagree" and apart["mask_iou"] < 0.1
    assert not apart["accepted"]
    sure = CurationSearch(64, 16, 1, similarity.threshold - MASK_BAND, 0.6)  # far above: a copy
    assert find_duplicates(manifest.assign(mask_path=masks["apart"]), sure)["accepted"].all()
