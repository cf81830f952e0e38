"""Duplicate detection by aligned SSIM with complete linkage, and the curation policies.

Candidates: every image's `candidates` nearest neighbours by the correlation of
`candidate_size` thumbnails, the whole image against the other's whole image or any of its
sub-fields (3 x 3 positions of CROP_FIELDS of its side), so that a crop finds its original.
Each candidate pair is aligned (crop, rescale and shift, `meddap.data.align`; zoomed crops up
to 1.35x too where one is among the other's ZOOM_CANDIDATES nearest, or inside a connected set)
and scored by the SSIM of its overlap at `image_size`. Groups are
complete-linkage clusters of the scored pairs: every two members of a group score at least
`threshold` (missing pairs inside a connected set are scored first), so weak links never chain.
Where both images have lesion masks, a pair scoring under threshold + MASK_BAND also needs a
mask IoU (after alignment) of at least `mask_iou`: neighbouring frames of one lesion look alike
but their lesions lie elsewhere. Each pair's `verdict` says why it is or is not a duplicate.

Ids are compared as plain strings everywhere: `id_a < id_b` in a pair, groups are numbered in
the order of their smallest member id, and `keep_one_consistent` keeps that smallest id.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pandas as pd
from PIL import Image
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.sparse import coo_array
from scipy.sparse.csgraph import connected_components

from meddap.common.atomic import write_parquet
from meddap.common.errors import MeddapError
from meddap.common.images import open_gray
from meddap.common.settings import Curation, CurationSearch
from meddap.data.align import WIN, Alignment, Prepared, align, fitted, overlap_slices, prepare

MANIFEST_COLUMNS = ("id", "label", "image_path", "mask_path")
DUPLICATE_COLUMNS = (
    "id_a",
    "id_b",
    "score",
    "scale_x",
    "scale_y",
    "shift_x",
    "shift_y",
    "overlap",
    "same_label",
    "mask_iou",
    "accepted",
    "verdict",
    "group",
)
VERDICTS = ("accepted", "below_threshold", "masks_disagree", "linkage")
MASK_BAND = 0.1  # pairs scoring under threshold + MASK_BAND need their masks to agree
POLICIES = ("drop_all", "keep_one_consistent", "none")
ZOOM_CANDIDATES = 2  # each image's most correlated images searched for zoomed copies
CROP_FIELDS = (0.7, 0.85)  # sub-field sides (fraction of the image) a crop is looked up by
_BOXES = [(0.0, 0.0, 1.0, 1.0)] + [
    (x, y, x + f, y + f)
    for f in CROP_FIELDS
    for x in np.linspace(0, 1 - f, 3)
    for y in np.linspace(0, 1 - f, 3)
]
_CHUNK = 64  # pairs per task of a worker process
_SHARED: Sequence[Prepared] = ()  # the images a worker process aligns (set by `_share`)
log = logging.getLogger(__name__)


def find_duplicates(manifest: pd.DataFrame, similarity: CurationSearch) -> pd.DataFrame:
    """Every scored pair (see the module); `accepted` pairs carry their group, others NA."""
    _check_manifest(manifest, "manifest")
    _check_similarity(similarity)
    images = manifest.sort_values("id", kind="stable").reset_index(drop=True)
    views, prepared = _load(images["image_path"].tolist(), similarity)
    scores = _align_all(prepared, _candidates(views, similarity))
    ious: dict[tuple[int, int], float] = {}

    def linked() -> set[tuple[int, int]]:
        """Pairs scoring at least the threshold that their masks do not veto (`_vetoed`)."""
        strong = [p for p, s in scores.items() if s.score >= similarity.threshold]
        new = [p for p in strong if p not in ious]
        found = [scores[p] for p in new]
        ious.update(zip(new, _mask_ious(images, new, found, similarity.image_size), strict=True))
        return {p for p in strong if not _vetoed(scores[p].score, ious[p], similarity)}

    groups = _complete_groups(len(images), scores, prepared, linked)
    pairs = sorted(scores)
    a, b = (np.array([p[k] for p in pairs], dtype=np.int64) for k in (0, 1))
    found = [scores[p] for p in pairs]
    accepted = np.array([groups.get(i, -1) == groups.get(j, -2) for i, j in pairs], dtype=bool)
    group = pd.array(
        [groups[i] if ok else None for i, ok in zip(a, accepted, strict=True)], "Int64"
    )
    table = pd.DataFrame(
        {
            "id_a": images["id"].to_numpy()[a].astype(str),
            "id_b": images["id"].to_numpy()[b].astype(str),
            "score": [s.score for s in found],
            "scale_x": [s.scale[0] for s in found],
            "scale_y": [s.scale[1] for s in found],
            "shift_x": [s.shift[0] for s in found],
            "shift_y": [s.shift[1] for s in found],
            "overlap": [s.overlap for s in found],
            "same_label": images["label"].to_numpy()[a] == images["label"].to_numpy()[b],
            "mask_iou": [ious.get(p, np.nan) for p in pairs],
            "accepted": accepted,
            "verdict": _verdicts(pairs, found, accepted, linked(), similarity.threshold),
            "group": group,
        },
        columns=list(DUPLICATE_COLUMNS),
    )
    return table.sort_values(["group", "id_a", "id_b"], ignore_index=True, na_position="last")


def _vetoed(score: float, iou: float, similarity: CurationSearch) -> bool:
    """A pair scoring under threshold + MASK_BAND whose lesion masks overlap less than
    `mask_iou` after alignment: neighbouring frames of one lesion, not a copy."""
    return score < similarity.threshold + MASK_BAND and iou < similarity.mask_iou


def _verdicts(
    pairs: list[tuple[int, int]],
    found: list[Alignment],
    accepted: np.ndarray,
    linked: set[tuple[int, int]],
    threshold: float,
) -> list[str]:
    """Why each pair is or is not a duplicate (VERDICTS): linkage refused a linked pair."""
    return [
        "accepted" if ok
        else "below_threshold" if alignment.score < threshold
        else "masks_disagree" if pair not in linked
        else "linkage"
        for pair, alignment, ok in zip(pairs, found, accepted, strict=True)
    ]  # fmt: skip


def align_pair(prepared: Sequence[Prepared], i: int, j: int, zoom: bool) -> Alignment:
    """Image j placed in image i (`_align`, zoomed copies searched with `zoom`); any failure
    stops naming both images."""
    a, b = prepared[i], prepared[j]
    try:
        return _align(a, b, zoom)
    except Exception as err:  # a bug on one pair of real images: say which, not a traceback
        raise MeddapError(
            f"aligning images {a.source} and {b.source} failed ({type(err).__name__}: {err})"
        ) from err


def _align(a: Prepared, b: Prepared, zoom: bool) -> Alignment:
    """b placed in a, the larger-area one taken as the frame (less upsampling)."""
    if a.native[0] * a.native[1] >= b.native[0] * b.native[1]:
        return align(a, b, zoom)
    found = align(b, a, zoom)
    scale = (1 / found.scale[0], 1 / found.scale[1])
    shift = (-found.shift[0] * scale[0], -found.shift[1] * scale[1])
    return Alignment(found.score, scale, shift, found.overlap)


def _align_all(
    prepared: Sequence[Prepared], pairs: list[tuple[int, int, bool]]
) -> dict[tuple[int, int], Alignment]:
    """`align_pair` of every pair (i, j, zoom), in as many (forked) processes as this one may
    use cores; keyed by (i, j)."""
    workers = min(len(os.sched_getaffinity(0)), len(pairs) // _CHUNK)
    keys = [(i, j) for i, j, _ in pairs]
    if workers < 2:
        return {key: align_pair(prepared, *pair) for key, pair in zip(keys, pairs, strict=True)}
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(workers, context, initializer=_share, initargs=(prepared,)) as pool:
        return dict(zip(keys, pool.map(_align_shared, pairs, chunksize=_CHUNK), strict=True))


def _share(prepared: Sequence[Prepared]) -> None:
    global _SHARED
    _SHARED = prepared


def _align_shared(pair: tuple[int, int, bool]) -> Alignment:
    return align_pair(_SHARED, *pair)


def member_groups(duplicates: pd.DataFrame) -> pd.Series:
    """The duplicate group of every id in an accepted pair (index: id)."""
    accepted = duplicates[duplicates["accepted"].astype(bool)]
    members = pd.concat(
        [
            accepted[["id_a", "group"]].set_axis(["id", "group"], axis=1),
            accepted[["id_b", "group"]].set_axis(["id", "group"], axis=1),
        ]
    ).drop_duplicates("id")
    return members.set_index("id")["group"].astype("Int64")


def apply_policy(manifest: pd.DataFrame, duplicates: pd.DataFrame, policy: str) -> pd.DataFrame:
    """The curated manifest: rows the policy keeps, plus a nullable `duplicate_group` column.

    drop_all: every member of every group leaves (the published Curated-BUSI rule).
    keep_one_consistent: a group whose labels agree keeps its smallest id; any other group leaves.
    none: nothing leaves.
    """
    if policy not in POLICIES:
        raise MeddapError(f"config key curation.policy must be one of {POLICIES}, got {policy!r}")
    groups = member_groups(duplicates)
    unknown = sorted(set(groups.index) - set(manifest["id"]))
    if unknown:
        raise MeddapError(f"duplicates name ids absent from the manifest: {unknown[:5]}")
    curated = manifest.assign(duplicate_group=manifest["id"].map(groups).astype("Int64"))
    if policy == "none":
        return curated.reset_index(drop=True)
    keep = curated["duplicate_group"].isna()
    if policy == "keep_one_consistent":
        keep |= curated["id"].isin(_consistent_representatives(curated))
    return curated[keep].reset_index(drop=True)


def read_duplicates(path: str) -> pd.DataFrame:
    """duplicates.parquet, checked for the columns of a duplicates table."""
    pairs = pd.read_parquet(path)
    missing = [c for c in DUPLICATE_COLUMNS if c not in pairs.columns]
    if missing:
        raise MeddapError(f"{path} lacks the columns {missing} of a duplicates table")
    return pairs


def find_duplicates_job(*, manifest: str, duplicates: str, similarity: CurationSearch) -> None:
    """Snakemake job: manifest.parquet -> duplicates.parquet."""
    table = pd.read_parquet(manifest)
    _check_manifest(table, manifest)
    pairs = find_duplicates(table, similarity)
    accepted = pairs[pairs["accepted"]]
    sizes = member_groups(pairs).value_counts()  # members per group
    log.info(
        "%d images: %d pairs scored, %d accepted at aligned SSIM >= %s (%d with different "
        "labels) in %d groups, sizes %s",
        len(table),
        len(pairs),
        len(accepted),
        similarity.threshold,
        int((~accepted["same_label"]).sum()),
        len(sizes),
        {int(size): int(n) for size, n in sizes.value_counts().sort_index().items()},
    )
    write_parquet(pairs, duplicates)


def curate(*, manifest: str, duplicates: str, curated: str, curation: Curation) -> None:
    """Snakemake job: manifest.parquet + duplicates.parquet -> curated.parquet."""
    table = pd.read_parquet(manifest)
    _check_manifest(table, manifest)
    kept = apply_policy(table, read_duplicates(duplicates), curation.policy)
    removed = table[~table["id"].isin(kept["id"])]["label"].value_counts().sort_index()
    log.info(
        "policy %s keeps %d of %d images; removed per class: %s",
        curation.policy,
        len(kept),
        len(table),
        {label: int(n) for label, n in removed.items()},
    )
    write_parquet(kept, curated)


def _check_manifest(manifest: pd.DataFrame, name: str) -> None:
    missing = [c for c in MANIFEST_COLUMNS if c not in manifest.columns]
    if missing:
        raise MeddapError(f"{name} lacks the manifest columns {missing}")
    if manifest["id"].duplicated().any():
        raise MeddapError(f"{name} has repeated ids, expected one row per image")


def _check_similarity(similarity: CurationSearch) -> None:
    for key, low in (("image_size", 2 * WIN), ("candidate_size", WIN), ("candidates", 1)):
        value = getattr(similarity, key)
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise MeddapError(f"config key curation.{key} must be an integer >= {low}, not {value}")
    if not 0 < similarity.threshold <= 1:
        raise MeddapError(
            f"config key curation.threshold must lie in (0, 1], not {similarity.threshold}"
        )
    if not 0 <= similarity.mask_iou <= 1:
        raise MeddapError(
            f"config key curation.mask_iou must lie in [0, 1], not {similarity.mask_iou}"
        )


def _load(paths: list[str], similarity: CurationSearch) -> tuple[np.ndarray, list[Prepared]]:
    """Unit-norm views (N, boxes, s * s) for the candidates and the aspect-kept images to align."""
    size = similarity.candidate_size
    views = np.empty((len(paths), len(_BOXES), size * size))
    prepared = []
    for k, path in enumerate(paths):
        with open_gray(path) as gray:
            width, height = gray.size
            for v, (x0, y0, x1, y1) in enumerate(_BOXES):
                box = (x0 * width, y0 * height, x1 * width, y1 * height)
                views[k, v] = np.asarray(
                    gray.resize((size, size), box=box), dtype=np.float64
                ).ravel()
            prepared.append(prepare(gray, similarity.image_size, path))
    views -= views.mean(axis=2, keepdims=True)
    return views / np.maximum(np.linalg.norm(views, axis=2, keepdims=True), 1e-12), prepared


def _candidates(views: np.ndarray, similarity: CurationSearch) -> list[tuple[int, int, bool]]:
    """Pairs (i < j, zoom) where one is among the other's `candidates` most correlated images:
    the best correlation of either's whole view with any view of the other; zoomed copies are
    searched for (`zoom`) where one is among the other's ZOOM_CANDIDATES most correlated."""
    n = len(views)
    if n < 2:
        return []
    boxes, size = views.shape[1:]
    similar = (views.reshape(-1, size) @ views[:, 0].T).reshape(n, boxes, n).max(axis=1)
    similar = np.maximum(similar, similar.T)
    np.fill_diagonal(similar, -np.inf)
    k = min(similarity.candidates, n - 1)
    nearest = np.argsort(-similar, axis=1, kind="stable")[:, :k]
    rows = np.repeat(np.arange(n), k)
    pairs = np.sort(np.column_stack([rows, nearest.ravel()]), axis=1)
    close = pairs[(np.arange(len(pairs)) % k) < ZOOM_CANDIDATES]
    zoom = {(int(i), int(j)) for i, j in close}
    return [(int(i), int(j), (int(i), int(j)) in zoom) for i, j in np.unique(pairs, axis=0)]


def _complete_groups(
    n: int,
    scores: dict[tuple[int, int], Alignment],
    prepared: Sequence[Prepared],
    linked: Callable[[], set[tuple[int, int]]],
) -> dict[int, int]:
    """Group of every grouped image: complete linkage of the `linked()` pairs inside each
    connected set of them (pairs not yet scored there are scored and added to `scores`),
    numbered by smallest member index (images are sorted by id)."""
    edges = np.array(sorted(linked()), dtype=np.int64)
    if not len(edges):
        return {}
    graph = coo_array((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(n, n))
    component = connected_components(graph, directed=False)[1]
    nodes = np.unique(edges)
    clusters = []
    for c in dict.fromkeys(component[nodes]):
        members = [int(i) for i in nodes[component[nodes] == c]]
        inside = [(i, j) for k, i in enumerate(members) for j in members[k + 1 :]]
        missing = [(i, j, True) for i, j in inside if (i, j) not in scores]
        scores.update(_align_all(prepared, missing))
        clusters += _complete_linkage(members, scores, linked())
    clusters.sort(key=min)
    return {i: g for g, cluster in enumerate(clusters) for i in cluster}


def _complete_linkage(
    members: list[int], scores: dict[tuple[int, int], Alignment], linked: set[tuple[int, int]]
) -> list[list[int]]:
    """Clusters (of two or more) in which every pair is linked: complete linkage of distance
    1 - score, 2 for a pair not linked, cut at 1."""
    if len(members) == 2:
        return [members]
    distance = [
        1 - scores[i, j].score if (i, j) in linked else 2.0
        for k, i in enumerate(members)
        for j in members[k + 1 :]
    ]
    labels = fcluster(linkage(distance, "complete"), 1.0, criterion="distance")
    clusters = [[m for m, c in zip(members, labels, strict=True) if c == x] for x in set(labels)]
    return [cluster for cluster in clusters if len(cluster) > 1]


def _mask_ious(
    images: pd.DataFrame, pairs: list[tuple[int, int]], found: list[Alignment], size: int
) -> np.ndarray:
    """Mask IoU of each pair over its aligned overlap; NaN if a mask is missing, or if both are
    empty there."""
    paths, out = images["mask_path"], np.full(len(pairs), np.nan)
    for k in range(len(pairs)):
        (i, j), where = pairs[k], found[k]
        if pd.isna(paths.iat[i]) or pd.isna(paths.iat[j]):
            continue
        with open_gray(paths.iat[i]) as mask_a, open_gray(paths.iat[j]) as mask_b:
            a_size = fitted(mask_a.size, size)
            pitch = a_size[0] / mask_a.size[0]
            b_size = tuple(
                max(1, round(n * s * pitch)) for n, s in zip(mask_b.size, where.scale, strict=True)
            )
            x = np.asarray(mask_a.resize(a_size, Image.Resampling.NEAREST)) > 0
            y = np.asarray(mask_b.resize(b_size, Image.Resampling.NEAREST)) > 0
        offset = (round(where.shift[1] * pitch), round(where.shift[0] * pitch))
        in_a, in_b = overlap_slices(x.shape, y.shape, offset)
        union = (x[in_a] | y[in_b]).sum()
        if union:
            out[k] = (x[in_a] & y[in_b]).sum() / union
    return out


def _consistent_representatives(curated: pd.DataFrame) -> list[str]:
    """The smallest id of every duplicate group whose members all carry the same label."""
    members = curated.dropna(subset=["duplicate_group"])
    by_group = members.groupby("duplicate_group")
    consistent = by_group["label"].nunique() == 1
    return by_group["id"].min()[consistent].tolist()
