"""Registries are the one source of each vocabulary: the schema keeps types, the registries
check names with one sentence, and each entry fits what it describes."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from meddap.cls.models import build_model
from meddap.cls.registry import CLASSIFIERS
from meddap.common.errors import MeddapError
from meddap.common.registry import Registry
from meddap.data.layouts import LAYOUTS
from meddap.multitask.modes import BACKBONES
from meddap.run.config import validate_config
from meddap.seg.registry import SEGMENTERS, Supervision, network_of, supervision_of

REPO = Path(__file__).resolve().parents[2]
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
DEFAULT = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
REGISTERED = {*CLASSIFIERS.names(), *SEGMENTERS.names(), *LAYOUTS.names(), *BACKBONES}


def _constraints(node: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple, str, Any]]:
    """(path, "enum" or "pattern", value) of every enum and pattern in the schema."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("enum", "pattern"):
                yield path, key, value
            else:
                yield from _constraints(value, (*path, key))
    elif isinstance(node, list):
        for item in node:
            yield from _constraints(item, path)


def test_the_schema_copies_no_registered_name() -> None:
    schema = yaml.safe_load(SCHEMA.read_text())
    found = [
        (path, kind, name)
        for path, kind, value in _constraints(schema)
        for name in REGISTERED
        if (name in value if kind == "enum" else f"{name}|" in value or f"|{name}" in value)
    ]
    assert found == []


def _with(path: str, value: Any) -> dict:
    config = copy.deepcopy(DEFAULT)
    *parents, last = path.split(".")
    node = config
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    if isinstance(node, list):  # the entry at that index, or a new last entry
        node[int(last) : int(last) + 1] = [value]
    else:
        node[last] = value
    return config


@pytest.mark.parametrize(
    ("key", "listing"),
    [
        ("classifier.models.0", CLASSIFIERS.listing()),
        ("quality.feature_model", CLASSIFIERS.listing()),
        ("segmentation.models.0", SEGMENTERS.listing()),
        ("segmentation.ablation.0", SEGMENTERS.listing()),
        ("segmentation.pairs.fidelity_model", SEGMENTERS.listing()),
        ("datasets.phantom.layout", LAYOUTS.listing()),
        ("multitask.backbones.0", " or ".join(BACKBONES)),
    ],
)
def test_an_unknown_name_stops_with_one_sentence_naming_the_key(key: str, listing: str) -> None:
    with pytest.raises(MeddapError) as err:
        validate_config(_with(key, "alexnet"), SCHEMA)
    message = str(err.value)
    assert message.startswith(f"config key '{key}': 'alexnet' is not one of the ")
    assert message.endswith(f"({listing})") and "\n" not in message


def test_an_ablation_name_must_be_a_deep_supervised_unet() -> None:
    with pytest.raises(MeddapError, match=r"'segmentation\.ablation\.0': 'unet' is not a deep-s"):
        validate_config(_with("segmentation.ablation.0", "unet"), SCHEMA)
    validate_config(_with("segmentation.ablation.0", "dsunet-s2-adv"), SCHEMA)


def test_the_registries_list_their_names_as_the_errors_did() -> None:
    assert CLASSIFIERS.listing() == "densenet121, resnet18, resnet34 or squeezenet1_1"
    grammar = "unet, attention_unet, unetpp, unetpp_ds or dsunet-s<stages 1-4>[-adv]"
    assert SEGMENTERS.listing() == grammar and len(SEGMENTERS.names()) == 4 + 8
    assert LAYOUTS.listing() == "busi, class_folders, bus_bra, udiat, bus_uclm or stu"


@pytest.mark.parametrize("name", CLASSIFIERS.names())
def test_each_classifiers_head_and_gradcam_layer_exist_in_its_model(name: str) -> None:
    entry = CLASSIFIERS.get(name, "classifier")
    model = build_model(name, 3, "none")
    head = [p for p in model.get_submodule(entry.head).parameters() if p.ndim > 1]
    assert head[-1].shape[0] == 3  # the 3-class head replaces exactly this submodule
    layer = model.get_submodule(entry.cam_layer)
    convolutions = [m for m in layer.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convolutions, f"{name}'s Grad-CAM layer {entry.cam_layer} has no convolution"


def test_dsunet_names_share_one_network_and_seed() -> None:
    assert {network_of(n) for n in SEGMENTERS.names() if n.startswith("dsunet")} == {"dsunet"}
    assert network_of("unetpp_ds") == "unetpp_ds" and supervision_of("unet") is None
    assert supervision_of("dsunet-s3-adv") == Supervision(3, True)
    with pytest.raises(MeddapError, match=r"segmentation model 'dsunet-s5' is not one of"):
        supervision_of("dsunet-s5")


def test_layouts_say_what_their_release_ships() -> None:
    unmasked = [n for n in LAYOUTS.names() if not LAYOUTS.get(n, "layout").masked]
    unlabelled = [n for n in LAYOUTS.names() if not LAYOUTS.get(n, "layout").labelled]
    assert (unmasked, unlabelled) == (["class_folders"], ["stu"])


def test_a_registry_lists_families_once_and_refuses_a_second_entry() -> None:
    registry: Registry[int] = Registry("things", "section.things")
    registry.register("a", 1)
    registry.register("b-1", 2, shown="b-<n>")
    registry.register("b-2", 3, shown="b-<n>")
    assert registry.names() == ("a", "b-1", "b-2") and registry.listing() == "a or b-<n>"
    assert registry.get("b-2", "thing") == 3
    with pytest.raises(MeddapError, match=r"^thing 'c' is not one of the things of config key"):
        registry.get("c", "thing")
    with pytest.raises(MeddapError, match="'a' of config key 'section.things' registered twice"):
        registry.register("a", 4)
