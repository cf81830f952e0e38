"""Config validation: the default and paper configs pass; bad keys stop with one sentence."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import pytest
import yaml

from meddap.common.errors import MeddapError
from meddap.run.config import base_model_location, validate_config

REPO = Path(__file__).resolve().parents[2]
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
BUS_BRA = {
    "dataset": "bus_bra",
    "datasets": {"bus_bra": {"path": str(REPO.parent / "shared" / "data" / "busbra-subset")}},
}


@pytest.fixture()
def default() -> dict:
    return yaml.safe_load((REPO / "config" / "config.yaml").read_text())


def _merge(base: dict, update: dict) -> dict:
    merged = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def test_default_config_is_valid(default: dict) -> None:
    validate_config(default, SCHEMA)


def test_release_folds_of_bus_bra_are_valid(default: dict) -> None:
    release = {"folds": {"source": "release", "k": 10}, "cross_domain": {"targets": []}}
    validate_config(_merge(default, {**BUS_BRA, **release}), SCHEMA)


def test_paper_config_is_valid_with_a_busi_path(default: dict, busi_sample: Path) -> None:
    paper = yaml.safe_load((REPO / "config" / "paper.yaml").read_text())
    config = _merge(_merge(default, paper), {"datasets": {"busi": {"path": str(busi_sample)}}})
    validate_config(config, SCHEMA)


@pytest.mark.parametrize(
    ("update", "key", "why"),
    [
        ({"folds": {"k": 0}}, "folds.k", "less than the minimum"),
        ({"curation": {"sizee": 3}}, "curation.sizee", "unknown key"),
        ({"lora": {"ranks": [-50]}}, "lora.ranks.0", "less than the minimum"),
        ({"lora": {"train_adjective": "high contrast"}}, "lora.train_adjective", "does not match"),
        ({"curation": {"policy": "drop_some"}}, "curation.policy", "is not one of"),
        ({"folds": {"val_fraction": "a lot"}}, "folds.val_fraction", "not of type"),
        ({"dataset": "nosuch"}, "dataset", "not in 'datasets'"),
        ({"synthesis": {"ratios": [50, 200]}}, "synthesis.ratios", "exceeds synthesis.pool (100)"),
        ({"resources": {"mem_mb": 50}}, "resources.mem_mb", "less than the minimum"),
        ({"dataset": "udiat"}, "datasets.udiat", "has no source"),
        ({"lora": {"ranks": [0]}}, "lora.ranks", "chooses among the LoRA ranks above 0"),
        ({"synthesis": {"rank": 8}}, "synthesis.rank", "8 is not in lora.ranks"),
        ({"dataset": "stu"}, "dataset", "has no class labels"),
        ({"multitask": {"modes": ["mt-l0.50"]}}, "multitask.modes", "without trailing zeros"),
        ({"multitask": {"backbones": ["unet"]}}, "multitask.backbones.0", "is not one of"),
        ({"cross_domain": {"targets": ["phantom"]}}, "cross_domain.targets", "needs another"),
        ({"cross_domain": {"targets": ["nosuch"]}}, "cross_domain.targets", "not in 'datasets'"),
        ({"cross_domain": {"folds": [3]}}, "cross_domain.folds", "does not exist with folds.k = 3"),
        ({"cross_domain": {"ranks": [0]}}, "cross_domain.ranks.0", "less than the minimum"),
        ({"classifier": {"external": ["stu"]}}, "classifier.external", "has no class labels"),
        ({"classifier": {"external": ["phantom"]}}, "classifier.external", "is the dataset the"),
        ({"folds": {"source": "release"}}, "dataset", "needs a layout that ships folds (bus_bra)"),
        ({**BUS_BRA, "folds": {"source": "release"}}, "folds.k", "ships 5 and 10 folds, not 3"),
        ({**BUS_BRA, "folds": {"source": "release", "k": 5},
          "cross_domain": {"targets": ["phantom"]}}, "cross_domain.targets", "ships folds"),
        ({"segmentation": {"external": ["phantom"]}}, "segmentation.external", "is the dataset"),
        ({"datasets": {"twin": {"layout": "busi", "phantom": {"patients": 60, "image_size": 128,
          "duplicates": 8, "conflicting": 2, "second_mask_fraction": 0.1, "seed": 0}}},
          "segmentation": {"external": ["twin"]}}, "segmentation.external", "same source as"),
        ({"segmentation": {"channels": [16, 32]}}, "segmentation.channels",
         "has 2 items; expected exactly 5"),
        ({"multitask": {"channels": [8] * 6}}, "multitask.channels",
         "has 6 items; expected exactly 5"),
        ({"lora": {"ranks": []}}, "lora.ranks", "has 0 items; expected at least 1"),
        ({"datasets": {"busi": {"path": "/no/such/dir"}}, "dataset": "busi"},
         "datasets.busi.path", "does not exist"),
    ],
)  # fmt: skip
def test_bad_config_names_the_key(default: dict, update: dict, key: str, why: str) -> None:
    with pytest.raises(MeddapError) as err:
        validate_config(_merge(default, update), SCHEMA)
    message = str(err.value)
    assert f"'{key}'" in message and why in message
    assert "\n" not in message


@pytest.mark.parametrize("key", ["classifier.external", "segmentation.external"])
def test_an_external_copy_of_the_dataset_stops_at_planning(
    default: dict, busi_sample: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, key: str
) -> None:
    """A copy of the training folder elsewhere (same content digest) is the same data."""
    monkeypatch.chdir(tmp_path)  # the content digests' cache lands here
    copy_ = shutil.copytree(busi_sample, tmp_path / "copy")
    section, _ = key.split(".")
    datasets = {"busi": {"path": str(busi_sample)}, "mine": {"layout": "busi", "path": str(copy_)}}
    config = _merge(
        default, {"dataset": "busi", "datasets": datasets, section: {"external": ["mine"]}}
    )
    with pytest.raises(
        MeddapError, match=rf"'{key}': 'mine' has the same source as .* 'busi' \(sha256"
    ):
        validate_config(config, SCHEMA)
    (copy_ / "benign" / "benign (1).png").unlink()  # different content: a different set
    (copy_ / "benign" / "benign (1)_mask.png").unlink()
    validate_config(config, SCHEMA)


CASES = sorted((REPO / ".test").glob("*.yaml"))


def test_every_test_config_is_listed_in_the_test_readme() -> None:
    readme = (REPO / ".test" / "README.md").read_text()
    assert CASES, "no .test/*.yaml"
    assert [c.name for c in CASES if f"`{c.name}`" not in readme] == []


@pytest.mark.parametrize("case", CASES, ids=lambda path: path.stem)
def test_test_config_is_valid_over_the_default_and_says_what_it_exercises(
    default: dict, case: Path
) -> None:
    """As `snakemake --configfile .test/<case>.yaml` run from the repo root merges it."""
    text = case.read_text()
    assert text.startswith("# "), f"{case.name} lacks its comment header"
    update = yaml.safe_load(text)
    for entry in update.get("datasets", {}).values():
        if "path" in entry and not Path(entry["path"]).is_absolute():
            entry["path"] = str(REPO / entry["path"])  # relative to the working directory
    validate_config(_merge(default, update), SCHEMA)


def test_a_relative_base_model_folder_is_found_in_the_repository_from_any_workdir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    shipped = "resources/tiny-sd-phantom"
    assert base_model_location(shipped, REPO) == str((REPO / shipped).resolve())
    (tmp_path / shipped).mkdir(parents=True)  # the working directory's own folder wins
    assert base_model_location(shipped, REPO) == shipped
    hub = "CompVis/stable-diffusion-v1-4"
    assert base_model_location(hub, REPO) == hub


def test_the_old_name_of_the_pairs_section_stops_naming_the_new_one(default: dict) -> None:
    old = _merge(default, {"segmentation": {"synthesis": {"settings": ["mask-real"]}}})
    with pytest.raises(
        MeddapError, match=r"'segmentation\.synthesis' is now 'segmentation\.pairs'"
    ):
        validate_config(old, SCHEMA)
