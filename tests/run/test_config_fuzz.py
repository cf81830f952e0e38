"""Every leaf key of the config schema, set to a wrong type and to an out-of-range value, stops
at validation with one sentence naming the key (the cases are generated from the schema)."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from meddap.common.errors import MeddapError
from meddap.run.config import validate_config

REPO = Path(__file__).resolve().parents[2]
SCHEMA_PATH = REPO / "workflow" / "schemas" / "config.schema.yaml"
SCHEMA = yaml.safe_load(SCHEMA_PATH.read_text())
DEFAULT = yaml.safe_load((REPO / "config" / "config.yaml").read_text())


def _resolve(node: dict) -> dict:
    while "$ref" in node:
        node = SCHEMA["definitions"][node["$ref"].rsplit("/", 1)[1]]
    return node


def leaves(node: dict, value: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple, dict]]:
    """(key path, schema) of every leaf: each property of each object the default config holds
    (an absent optional leaf too), each entry of a map such as `datasets`."""
    node = _resolve(node)
    if not isinstance(value, dict) or not ({"properties", "additionalProperties"} & set(node)):
        yield path, node
        return
    for key, child in node.get("properties", {}).items():
        yield from leaves(child, value.get(key), (*path, key))
    extra = node.get("additionalProperties")
    if isinstance(extra, dict):
        for key in set(value) - set(node.get("properties", {})):
            yield from leaves(extra, value[key], (*path, key))


def _rejects(node: dict, value: Any) -> bool:
    return not jsonschema.Draft7Validator({**node, "definitions": SCHEMA["definitions"]}).is_valid(
        value
    )


def _near_bounds(node: dict) -> list[Any]:
    """Values just outside each bound of `node` (and of its alternatives and items)."""
    node = _resolve(node)
    out: list[Any] = []
    for branch in node.get("oneOf", []) + node.get("anyOf", []):
        out += _near_bounds(branch)
    out += [node["minimum"] - 1] if "minimum" in node else []
    out += [node["maximum"] + 1] if "maximum" in node else []
    out += [node[k] for k in ("exclusiveMinimum", "exclusiveMaximum") if k in node]
    out += [node.get("minimum", 0) + node["multipleOf"] + 1] if "multipleOf" in node else []
    out += ["not-one-of-them"] if "enum" in node else []
    out += ["Not A Match !"] if "pattern" in node else []
    out += [""] if node.get("minLength") else []
    if node.get("type") == "array":
        items = _resolve(node.get("items", {}))
        out += [[]] if node.get("minItems") else []
        out += [[_example(items)] * (node["maxItems"] + 1)] if "maxItems" in node else []
        out += [[bad] for bad in _near_bounds(items)]
    return out


def _example(node: dict) -> Any:
    node = _resolve(node)
    if "enum" in node:
        return node["enum"][0]
    return {"integer": node.get("minimum", 1), "number": node.get("minimum", 1.0)}.get(
        node.get("type"), "x"
    )


def cases() -> Iterator[Any]:
    for path, node in leaves(SCHEMA, DEFAULT):
        key = ".".join(path)
        wrong = next(v for v in ({"wrong": "type"}, ["wrong"], "wrong") if _rejects(node, v))
        yield pytest.param(path, wrong, id=f"{key}-type")
        outside = [v for v in _near_bounds(node) if _rejects(node, v)]
        if outside:
            yield pytest.param(path, outside[0], id=f"{key}-range")


def _set(config: dict, path: tuple[str, ...], value: Any) -> dict:
    changed = copy.deepcopy(config)
    parent = changed
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = value
    return changed


CASES = list(cases())


def test_the_cases_cover_the_schema() -> None:
    assert len(CASES) > 250  # every leaf of every section, once each way, most with a bound


@pytest.mark.parametrize(("path", "value"), CASES)
def test_a_wrong_value_of_any_key_stops_naming_it(path: tuple[str, ...], value: Any) -> None:
    with pytest.raises(MeddapError) as err:
        validate_config(_set(DEFAULT, path, value), SCHEMA_PATH)
    message = str(err.value)
    assert f"config key '{'.'.join(path)}" in message and "\n" not in message
