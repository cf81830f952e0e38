"""meddap.trainsets: one class per kind of training set, one parser, wildcards from the kinds."""

from __future__ import annotations

import copy
import re

import pandas as pd
import pytest
import yaml

from meddap import trainsets
from meddap.common import paths
from meddap.common.errors import MeddapError
from meddap.trainsets import CLASSIFIER, KINDS, SEGMENTER, WILDCARDS, parse, planned
from meddap.trainsets.augmented import Augmented
from meddap.trainsets.pairs import PairSet
from meddap.trainsets.real import Real
from meddap.trainsets.text import TextSet
from tests.conftest import REPO

NAMES = {  # a name of each kind, and its parsed object
    "real": Real(),
    "r2-high-contrast-50": TextSet(2, "high-contrast", 50),
    "aug-deepstack": Augmented("deepstack"),
    "mask-real-1to2": PairSet("mask-real", "mask", "real", 1, 2),
    "edge-real-0to1-mix0.25p8": PairSet("edge-real", "edge", "real", 0, 1, 0.25, 8),
}
KEYS = {"dataset": "phantom", "fold": "1"}


@pytest.fixture
def config() -> dict:
    return copy.deepcopy(yaml.safe_load((REPO / "config" / "config.yaml").read_text()))


@pytest.mark.parametrize(("name", "parsed"), list(NAMES.items()))
def test_each_name_parses_to_one_kind_and_back(name: str, parsed: object) -> None:
    assert parse(name) == parsed and parse(name).name == name
    assert [kind for kind in KINDS if kind.PATTERN.fullmatch(name)] == [type(parsed)]
    assert parse(name) is parse(name)  # parsed once: the parser is cached


@pytest.mark.parametrize("name", ["", "Real", "r00-none-50", "aug-", "mask-real", "x-y-2to1"])
def test_a_name_of_no_kind_stops_in_one_sentence_naming_every_grammar(name: str) -> None:
    with pytest.raises(MeddapError) as err:
        parse(name)
    message = str(err.value)
    assert repr(name) in message and "\n" not in message
    assert all(kind.GRAMMAR in message for kind in KINDS)


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("aug-blur", "names no augmentation"),
        ("edge-clinical-1to2", "edge conditioning needs a real image's edges"),
        ("mask-clinical-1to2-mix0.5p4", "mask source 'clinical' has none"),
    ],
)
def test_a_name_of_a_kind_with_parts_not_allowed_stops(name: str, why: str) -> None:
    with pytest.raises(MeddapError, match=re.escape(why)):
        parse(name)


def test_the_wildcards_are_the_kinds_patterns_for_each_job() -> None:
    for name, parsed in NAMES.items():
        for task, constraint in WILDCARDS.items():
            assert bool(re.fullmatch(constraint, name)) == (task in parsed.TASKS), (task, name)
    assert "?P<" not in "".join(WILDCARDS.values())  # Snakemake names its own groups


@pytest.mark.parametrize(
    ("name", "task", "why"),
    [
        ("aug-mirror", CLASSIFIER, "which only segmenter jobs train on"),
        ("r2-none-50", SEGMENTER, "which only classifier jobs train on"),
        ("mask-real-0to1", CLASSIFIER, "0:1 (synthetic only) has no normal image"),
        ("mask-real-1to2-mix0.5p4", CLASSIFIER, "patch mixing is for segmenters only"),
        ("mask-real-1to3", SEGMENTER, "config key 'segmentation.pairs.pool' generates 2"),
        ("r2-none-300", CLASSIFIER, "exceeds config key 'synthesis.pool' (100%)"),
    ],
)
def test_planning_stops_on_a_set_its_job_cannot_train(
    config: dict, name: str, task: str, why: str
) -> None:
    with pytest.raises(MeddapError, match=re.escape(why)):
        planned(name, config, task)


def test_each_kind_names_the_manifest_and_folders_its_job_reads() -> None:
    assert parse("real").manifests(KEYS) == [] and parse("aug-mirror").files(KEYS) == []
    text = parse("r2-none-50")
    assert (
        text.manifests(KEYS) == [paths.SYNTH_MANIFEST.format(rank=2, adjective="none", **KEYS)]
        and text.files(KEYS) == []
    )
    pool = {**KEYS, "setting": "mask-real"}
    pairs = parse("mask-real-1to2-mix0.5p4")
    assert pairs.manifests(KEYS) == [paths.PAIRS_MANIFEST.format(**pool)]
    assert pairs.files(KEYS) == [
        paths.PAIRS_IMAGES.format(**pool),
        paths.PAIRS_MASKS.format(**pool),
    ]


def test_what_a_segmenter_job_gets_from_its_set() -> None:
    assert parse("aug-mirror").augmentations == ("mirror",) and parse("real").mixing is None
    assert parse("mask-real-1to2-mix0.5p4").mixing == (0.5, 4)
    assert not parse("mask-real-0to1").includes_real and parse("mask-real-1to1").includes_real


def test_a_job_needs_exactly_the_manifests_its_set_reads() -> None:
    train = pd.DataFrame({"label": ["benign"]})
    assert parse("real").added_rows([], 0, train, CLASSIFIER) is None
    with pytest.raises(MeddapError, match="trainset real needs 0 synthetic manifest"):
        parse("real").added_rows(["x.parquet"], 0, train, CLASSIFIER)
    with pytest.raises(MeddapError, match="trainset r2-none-50 needs 1 synthetic manifest"):
        parse("r2-none-50").added_rows([], 0, train, CLASSIFIER)


def test_pair_classifier_sets_count_lesions_only(tmp_path) -> None:
    pool = pd.DataFrame(
        {
            "id": [f"s{i}" for i in range(6)],
            "label": "benign",
            "image_path": "x.png",
            "mask_path": "y.png",
            "index": range(6),
            "fold": 0,
            "setting": "mask-real",
        }
    )
    pool.to_parquet(tmp_path / "pool.parquet")
    train = pd.DataFrame({"id": ["a", "b", "c"], "label": ["normal", "benign", "malignant"]})
    wanted = parse("mask-real-1to2")
    assert len(wanted.rows(str(tmp_path / "pool.parquet"), 0, train, CLASSIFIER)) == 4
    assert len(wanted.rows(str(tmp_path / "pool.parquet"), 0, train, SEGMENTER)) == 6


def test_each_module_s_kind_is_registered_once() -> None:
    assert {Real, TextSet, Augmented, PairSet} <= set(KINDS)
    assert len({kind.GRAMMAR for kind in KINDS}) == len(KINDS)
    assert all(kind.__module__.startswith(trainsets.__name__) for kind in KINDS)
