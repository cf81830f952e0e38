"""Config validation: one clear sentence naming the offending key."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from meddap.cls.registry import CLASSIFIERS
from meddap.common.errors import MeddapError
from meddap.data.fingerprint import shared_source
from meddap.data.layouts import LAYOUTS, check_release_folds
from meddap.data.registry import check_local_path, source_kind
from meddap.lora.released import check_released
from meddap.multitask.modes import BACKBONES, parse_mode
from meddap.seg.registry import SEGMENTERS
from meddap.trainsets import CLASSIFIER, SEGMENTER, TrainingSet, check_listed, planned
from meddap.trainsets.pairs import check_setting, mixing_token

RENAMED = {("segmentation", "synthesis"): "segmentation.pairs"}  # old key -> its new name


def _key(error: jsonschema.ValidationError) -> str:
    parts = [str(p) for p in error.absolute_path]
    if error.validator == "additionalProperties":
        extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        parts.append(extra[0] if extra else "?")
        return ".".join(parts)
    if error.validator == "required":
        missing = [k for k in error.validator_value if k not in error.instance]
        parts.append(missing[0] if missing else "?")
    return ".".join(parts) or "<root>"


def _explain(error: jsonschema.ValidationError) -> str:
    if error.validator == "additionalProperties":
        allowed = ", ".join(sorted(error.schema.get("properties", {})))
        return f"unknown key (expected one of: {allowed})"
    if error.validator == "required":
        return "is required but missing"
    if error.validator in ("minItems", "maxItems"):
        low, high = error.schema.get("minItems"), error.schema.get("maxItems")
        bound = f"at least {low}" if error.validator == "minItems" else f"at most {high}"
        need = f"exactly {low}" if low == high else bound
        return f"has {len(error.instance)} items; expected {need}"
    if error.validator == "propertyNames":
        return f"{error.instance!r} is not a valid name (lowercase letters, digits, underscores)"
    return f"{error.message}"


def schema_error(config: dict[str, Any], schema: dict[str, Any]) -> str | None:
    """The most relevant schema violation as a 'config key K: why' sentence, or None."""
    error = jsonschema.exceptions.best_match(jsonschema.Draft7Validator(schema).iter_errors(config))
    return None if error is None else f"config key '{_key(error)}': {_explain(error)}"


@cache
def _schema(path: str) -> dict[str, Any]:
    """The schema at `path`, read once a process (never changed while it runs)."""
    return yaml.safe_load(Path(path).read_text())


def validate_config(config: dict[str, Any], schema_path: str | Path) -> None:
    """Raise MeddapError (one sentence) unless `config` matches the schema and is coherent."""
    _check_renamed(config)
    error = schema_error(config, _schema(str(schema_path)))
    if error:
        raise MeddapError(error)
    _check_names(config)
    _check_dataset(config, config["dataset"], "dataset")
    for name in config["classifier"]["external"]:
        _check_dataset(config, name, "classifier.external")
    _check_segmentation(config)
    check_listed(config["segmentation"]["trainsets"], "segmentation.trainsets")
    _check_external(config, "classifier.external", config["classifier"]["external"])
    if config["segmentation"]["models"]:
        _check_external(config, "segmentation.external", config["segmentation"]["external"])
    _check_ranks(config["lora"]["ranks"], config["synthesis"]["rank"])
    check_released(config["lora"])
    _check_modes(config["multitask"]["modes"])
    _check_backbones(config["multitask"]["backbones"])
    _check_cross_domain(config)
    if config["folds"]["source"] == "release":
        split = [("dataset", config["dataset"])]
        split += [("cross_domain.targets", name) for name in config["cross_domain"]["targets"]]
        for key, name in split:
            check_release_folds(config["datasets"][name]["layout"], config["folds"]["k"], key)
    _check_pairs(config["segmentation"]["pairs"])
    pool, ratios = config["synthesis"]["pool"], config["synthesis"]["ratios"]
    if max(ratios) > pool:
        raise MeddapError(
            f"config key 'synthesis.ratios': {max(ratios)} exceeds synthesis.pool ({pool}), "
            "the size of each generated set"
        )


def _check_renamed(config: dict[str, Any]) -> None:
    """A key of an older meddap stops naming its new name (not a generic 'unknown key')."""
    for (section, key), new in RENAMED.items():
        if isinstance(config.get(section), dict) and key in config[section]:
            raise MeddapError(
                f"config key '{section}.{key}' is now '{new}' (mask-conditioned image-mask "
                f"pairs): rename it in your config file"
            )


def _check_names(config: dict[str, Any]) -> None:
    """Each classifier, segmenter and layout name is registered (the schema only types them);
    each `segmentation.ablation` name is a deep-supervised dsunet."""
    seg = config["segmentation"]
    classifiers = _listed(config["classifier"]["models"], "classifier.models")
    for name, key in [*classifiers, (config["quality"]["feature_model"], "quality.feature_model")]:
        CLASSIFIERS.check(name, key)
    fidelity = (seg["pairs"]["fidelity_model"], "segmentation.pairs.fidelity_model")
    for name, key in [*_listed(seg["models"], "segmentation.models"), fidelity]:
        SEGMENTERS.check(name, key)
    for name, key in _listed(seg["ablation"], "segmentation.ablation"):
        if SEGMENTERS.check(name, key).supervision is None:
            raise MeddapError(
                f"config key '{key}': {name!r} is not a deep-supervised dsunet-s<stages>[-adv] "
                "model (DSUNet's ablation varies its supervision)"
            )
    for name, entry in config["datasets"].items():
        LAYOUTS.check(entry["layout"], f"datasets.{name}.layout")


def _listed(names: list[str], key: str) -> list[tuple[str, str]]:
    """(name, its config key) of each entry of list `key`: ("unet", "segmentation.models.0")."""
    return [(name, f"{key}.{i}") for i, name in enumerate(names)]


def _check_pairs(synthesis: dict[str, Any]) -> None:
    """Each ratio 1:k of `segmentation.pairs` fits in its pools; each setting has a source;
    each patch-mixing point (lambda, p) has a trainset name."""
    for setting in synthesis["settings"]:
        check_setting(setting)
    pool = synthesis["pool"]
    for ratio in synthesis["ratios"]:
        if int(ratio.split(":")[1]) > pool:
            raise MeddapError(
                f"config key 'segmentation.pairs.ratios': {ratio} needs more synthetic pairs "
                f"per real image than segmentation.pairs.pool ({pool}) generates"
            )
    mixing = synthesis["mixing"]  # each axis on its own: either empty turns mixing off
    points = [(v, 2) for v in mixing["lambdas"]] + [(0.5, p) for p in mixing["patches"]]
    for value, patches in points:
        try:
            mixing_token(value, patches)
        except MeddapError as err:
            raise MeddapError(f"config key 'segmentation.pairs.mixing': {err}") from None


def _check_cross_domain(config: dict[str, Any]) -> None:
    """Each `cross_domain.targets` entry is another registered dataset; its folds exist."""
    for name in config["cross_domain"]["targets"]:
        _check_dataset(config, name, "cross_domain.targets")
        if name == config["dataset"]:
            raise MeddapError(
                f"config key 'cross_domain.targets': {name!r} is the dataset the grid runs on; "
                "adaptation needs another dataset"
            )
    k = config["folds"]["k"]
    for fold in config["cross_domain"]["folds"]:
        if fold >= k:
            raise MeddapError(
                f"config key 'cross_domain.folds': fold {fold} does not exist with folds.k = {k}"
            )


def _check_backbones(backbones: list[str]) -> None:
    """Each `multitask.backbones` entry is one of MTL's (`meddap.multitask.modes.BACKBONES`)."""
    for i, name in enumerate(backbones):
        if name not in BACKBONES:
            raise MeddapError(
                f"config key 'multitask.backbones.{i}': {name!r} is not one of the multi-task "
                f"backbones ({' or '.join(BACKBONES)})"
            )


def _check_modes(modes: list[str]) -> None:
    """Each `multitask.modes` entry parses (MTL's grammar, `meddap.multitask.modes`)."""
    for mode in modes:
        try:
            parse_mode(mode)
        except MeddapError as err:
            raise MeddapError(f"config key 'multitask.modes': {err}") from None


def _check_ranks(ranks: list[int], rank: str | int) -> None:
    """`synthesis.rank` is in `lora.ranks`; choosing the best needs a LoRA rank (above 0)."""
    if rank != "best" and rank not in ranks:
        raise MeddapError(f"config key 'synthesis.rank': {rank} is not in lora.ranks")
    if rank == "best" and not any(r > 0 for r in ranks):
        raise MeddapError(
            "config key 'lora.ranks': synthesis.rank 'best' chooses among the LoRA ranks above 0, "
            f"but {ranks} has none (0 is the base model without LoRA)"
        )


def base_model_location(value: str, repo: str | Path) -> str:
    """`diffusion.base_model` as jobs get it: a relative folder that is not below the working
    directory but is below `repo` (the shipped `resources/tiny-sd-phantom` when Snakemake runs
    with `--directory`) becomes that absolute path; hub ids and other paths stay as given."""
    shipped = Path(repo) / value
    if not Path(value).is_absolute() and not Path(value).exists() and shipped.is_dir():
        return str(shipped.resolve())
    return value


def _check_dataset(config: dict[str, Any], name: str, key: str) -> None:
    """The dataset named by config key `key` is registered, has a source and exists if local."""
    if name not in config["datasets"]:
        known = ", ".join(sorted(config["datasets"]))
        raise MeddapError(f"config key '{key}': {name!r} is not in 'datasets' ({known})")
    entry = config["datasets"][name]
    if not LAYOUTS.get(entry["layout"], "layout").labelled:
        raise MeddapError(
            f"config key '{key}': dataset {name!r} (layout {entry['layout']}) has no class "
            "labels, so it cannot train or test classifiers (expected a labelled dataset)"
        )
    source_kind(name, entry)
    check_local_path(name, entry)


def _check_external(config: dict[str, Any], key: str, names: list[str]) -> None:
    """No external test set is the training dataset, by name or by source (`shared_source`)."""
    dataset, registry = config["dataset"], config["datasets"]
    for name in names:
        if name == dataset:
            raise MeddapError(
                f"config key '{key}': {name!r} is the dataset the models train on, not an "
                "unseen test set"
            )
        shared = shared_source(dataset, registry[dataset], name, registry[name])
        if shared:
            raise MeddapError(
                f"config key '{key}': {name!r} has the same source as the training dataset "
                f"{dataset!r} ({shared}), so it is not an unseen test set"
            )


def _check_segmentation(config: dict[str, Any]) -> None:
    """With segmenters configured, the dataset and each external set are registered with masks."""
    seg = config["segmentation"]
    if not seg["models"]:
        return
    external = [(n, "segmentation.external") for n in seg["external"]]
    for name, key in [(config["dataset"], "dataset"), *external]:
        if name not in config["datasets"]:
            known = ", ".join(sorted(config["datasets"]))
            raise MeddapError(f"config key '{key}': {name!r} is not in 'datasets' ({known})")
        entry = config["datasets"][name]
        if not LAYOUTS.get(entry["layout"], "layout").masked:
            raise MeddapError(
                f"config key '{key}': dataset {name!r} (layout {entry['layout']}) has no lesion "
                "masks, so it cannot train or test segmenters (segmentation.models: [] skips them)"
            )
        source_kind(name, entry)
        check_local_path(name, entry)


def check_segmenter(config: dict[str, Any], model: str, trainset: str) -> TrainingSet:
    """The training set of a segmenter to plan; stops on a model or set it cannot train."""
    SEGMENTERS.get(model, "target segmenter")
    return planned(trainset, config, SEGMENTER)


def check_cell(target: str, grid: dict[str, tuple[Any, list]]) -> None:
    """Stop (before any job is planned) unless each value of a cell target is on its key's grid.

    `grid` maps a config key to (the target's value, the key's configured values); the cell
    rules take any name for each part, so that a misspelt one stops here, naming its key.
    """
    for key, (value, configured) in grid.items():
        if str(value) not in map(str, configured):  # a path's '100' is the config's 100
            raise MeddapError(
                f"target {target}: {value!r} is not in config key '{key}' ({configured}); "
                "a cell exists only on the grid"
            )


def check_fold(fold: str | int, k: int, dataset: str) -> None:
    """Stop before planning a job of a fold that the split into `folds.k` folds does not make."""
    if str(fold) not in map(str, range(k)):  # refuses -1, x and 01 (a copy of fold 1)
        raise MeddapError(
            f"fold {fold} of dataset {dataset} does not exist with config key 'folds.k' = {k} "
            f"(expected a fold from 0 to {k - 1})"
        )


def check_trainset(config: dict[str, Any], model: str, trainset: str) -> TrainingSet:
    """The training set of a classifier to plan; stops on a model or set it cannot train."""
    CLASSIFIERS.get(model, "target classifier")
    return planned(trainset, config, CLASSIFIER)
