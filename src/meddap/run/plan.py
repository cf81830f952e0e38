"""Grid expansion: which results a validated config asks for, as plain functions of it.

The rules (workflow/rules/*.smk) call these and keep only wildcards, input functions and paths.
Where `synthesis.rank` is `best` a checkpoint chooses each fold's LoRA rank, so the functions of
the text-to-image sets take `ranks(fold)`, the ranks of a fold's sets, from the caller.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from snakemake.io import expand

from meddap.common import paths
from meddap.common.errors import MeddapError
from meddap.data.registry import user_path
from meddap.lora.names import adaptation_rank
from meddap.multitask.modes import parse_mode
from meddap.run.config import check_cell
from meddap.trainsets import CLASSIFIER, SEGMENTER, PairSet, TextSet
from meddap.trainsets.pairs import TEXT, check_setting

Config = dict[str, Any]
Keys = Mapping[str, Any]  # a job's wildcards (Snakemake's Wildcards index like a dict)
Ranks = Callable[[int], Sequence[int]]  # fold -> the LoRA ranks of its sets
MULTITASK_TABLES = ["multitask_table5", "multitask_per_class"]


def folds(config: Config) -> range:
    return range(config["folds"]["k"])


def lora_ranks(config: Config) -> list[int]:
    """The trained LoRA ranks; rank 0 is the base model without LoRA."""
    return [r for r in config["lora"]["ranks"] if r > 0]


def fold_ranks(config: Config, chosen: int) -> list[int]:
    """The ranks of a fold's Table-1 sets: its chosen one, and 0 (the base model) where
    `lora.ranks` holds 0 (Table 1 then holds the base model's sets as rows r0-...)."""
    return sorted({chosen, *([0] if 0 in config["lora"]["ranks"] else [])})


def fold_trainsets(config: Config, ranks: Sequence[int]) -> list[str]:
    """A fold's classifier sets: real, and real + each nested synthetic prefix of each rank."""
    return ["real", *TextSet.grid(config, ranks)]


def pairs_settings(config: Config) -> list[str]:
    """The mask-conditioned pools' settings (none without segmenters)."""
    seg = config["segmentation"]
    return seg["pairs"]["settings"] if seg["models"] else []


def pairs_conditions(config: Config) -> list[str]:
    """The conditions the pools sample with a ControlNet (text has none)."""
    return sorted({check_setting(s)[0] for s in pairs_settings(config)} - {TEXT})


def pair_trainsets(config: Config, task: str = SEGMENTER) -> list[str]:
    """The mask-conditioned sets `task` jobs train on."""
    return PairSet.grid(config, task)


def seg_trainsets(config: Config) -> list[str]:
    """The segmentation table's rows: `segmentation.trainsets`, then the pair sets."""
    return [*config["segmentation"]["trainsets"], *pair_trainsets(config)]


def seg_figure_trainset(config: Config) -> str:
    """The contour figure's training set: real where listed, else the first one."""
    trainsets = config["segmentation"]["trainsets"]
    return "real" if "real" in trainsets else trainsets[0]


def adaptations(config: Config) -> list[str]:
    """The cross-domain table's adaptations: none, each LoRA rank r{k}, full fine-tuning."""
    cross = config["cross_domain"]
    return ["none", *(f"r{k}" for k in cross["ranks"]), *(["full"] if cross["full"] else [])]


def cross_domain_sets(config: Config) -> list[dict[str, Any]]:
    """(target, fold, adaptation) of every cell of the cross-domain table."""
    cross = config["cross_domain"]
    return [
        {"target": t, "fold": f, "adaptation": a}
        for t in cross["targets"]
        for f in cross["folds"]
        for a in adaptations(config)
    ]


def cls_metrics(config: Config, ranks: Ranks) -> list[str]:
    """Every classifier of every fold on each of the fold's sets (Tables 1-3)."""
    return [
        paths.CLS_METRICS.format(dataset=config["dataset"], fold=f, model=m, trainset=t)
        for f in folds(config)
        for m in config["classifier"]["models"]
        for t in fold_trainsets(config, ranks(f))
    ]


def external_metrics(config: Config, ranks: Ranks) -> list[str]:
    """Table 3's runs: every classifier, once there are external sets to score them on."""
    if not config["classifier"]["external"]:
        raise MeddapError(
            "Table 3 reports external accuracy, but config key 'classifier.external' is [] (the "
            "default target leaves Table 3 out then)"
        )
    return cls_metrics(config, ranks)


def quality_sets(config: Config, adjectives: Sequence[str], ranks: Ranks) -> list[dict]:
    """(fold, rank, adjective) of each fold's synthetic set of each of its ranks, per adjective."""
    return [
        {"fold": f, "rank": k, "adjective": a}
        for f in folds(config)
        for k in ranks(f)
        for a in adjectives
    ]


def quality_files(config: Config, adjectives: Sequence[str], ranks: Ranks) -> list[str]:
    """The quality JSON of each of those sets."""
    keys = quality_sets(config, adjectives, ranks)
    return [paths.QUALITY.format(dataset=config["dataset"], **k) for k in keys]


def synthetic_evaluations(config: Config, dataset: str, ranks: Ranks) -> list[str]:
    """Fig. 1a's results of `dataset`: every fold, rank, model and adjective."""
    return [
        paths.ON_SYNTHETIC.format(dataset=dataset, fold=f, model=m, rank=k, adjective=a)
        for f in folds(config)
        for k in ranks(f)
        for m in config["classifier"]["models"]
        for a in config["synthesis"]["adjectives"]
    ]


def seg_metrics(config: Config, models: Sequence[str], trainsets: Sequence[str]) -> list[str]:
    """The segmenter metrics of `models` x `trainsets` in every fold."""
    return expand(
        paths.SEG_METRICS,
        dataset=config["dataset"],
        fold=folds(config),
        model=models,
        trainset=trainsets,
    )


def ratio_cls_metrics(config: Config) -> list[str]:
    """The ratio table's AUC runs: each classifier on real and on the pools' 1:k sets."""
    trainsets = pair_trainsets(config, CLASSIFIER)
    if not trainsets:
        return []
    keys = {
        "dataset": config["dataset"],
        "fold": folds(config),
        "model": config["classifier"]["models"],
    }
    return expand(paths.CLS_METRICS, **keys, trainset=["real", *trainsets])


def pairs_quality(config: Config) -> list[str]:
    return expand(
        paths.PAIRS_QUALITY,
        dataset=config["dataset"],
        fold=folds(config),
        setting=pairs_settings(config),
    )


def _md_tables(names: list[str]) -> list[str]:
    return expand(paths.TABLE, name=names, ext="md")


def _cls_tables(config: Config) -> list[str]:
    return _md_tables(
        ["table1", "table2", *(["table3"] if config["classifier"]["external"] else [])]
    )


def _seg_tables(config: Config) -> list[str]:
    seg = config["segmentation"]
    return _md_tables(
        [
            *(["seg_table"] if seg["models"] else []),
            *(["seg_ablation"] if seg["ablation"] else []),
            *(["seg_ratio_table"] if pairs_settings(config) else []),
        ]
    )


def _later_tables(config: Config) -> list[str]:
    """The multi-task and cross-domain tables."""
    mt = config["multitask"]
    return _md_tables(
        [
            *(MULTITASK_TABLES if mt["backbones"] and mt["modes"] else []),
            *(["cross_domain_table"] if config["cross_domain"]["targets"] else []),
        ]
    )


def _seg_figures(config: Config) -> list[str]:
    dataset = config["dataset"]
    clinical = "mask-clinical" in pairs_settings(config)
    return [
        *([paths.CLINICAL_FIGURE.format(dataset=dataset, fold=0)] if clinical else []),
        *(
            [paths.SEG_FIGURE.format(dataset=dataset, fold=0)]
            if config["segmentation"]["models"]
            else []
        ),
    ]


def stage_targets(config: Config) -> list[str]:
    """Targets known before any rank is chosen: splits, the curation report, every LoRA, every
    fold's rank choice, the tables and figures."""
    dataset, fold = config["dataset"], folds(config)
    return [
        paths.SPLITS.format(dataset=dataset),
        paths.CURATION_REPORT.format(dataset=dataset),
        paths.CURATION_FIGURE.format(dataset=dataset),
        *expand(paths.LORA_WEIGHTS, dataset=dataset, fold=fold, rank=lora_ranks(config)),
        *expand(paths.RANK_SELECTION, dataset=dataset, fold=fold),
        *_cls_tables(config),
        paths.FIG1A.format(dataset=dataset),
        *expand(paths.FIG2, dataset=dataset, model=config["classifier"]["models"], fold=0),
        *expand(paths.SAMPLES, dataset=dataset, fold=fold),
        *_seg_tables(config),
        *pairs_quality(config),
        *_seg_figures(config),
        *_later_tables(config),
    ]


def summary_tables(config: Config) -> list[str]:
    """The Markdown tables the run summary gathers: every table among the stage targets."""
    return [
        t
        for t in stage_targets(config)
        if t.startswith(paths.TABLE.split("{")[0]) and t.endswith(".md")
    ]


# --- what single jobs and cells read (input functions of the rules, given their wildcards) ---


def cls_cell_metrics(config: Config, keys: Keys, rank: Callable[[int], int]) -> list[str]:
    """Only what one Table-1 cell needs: its setting's classifier in every fold (at the fold's
    chosen `rank(fold)`)."""
    synthesis = config["synthesis"]
    grid = {
        "classifier.models": (keys["model"], config["classifier"]["models"]),
        "synthesis.adjectives": (keys["adjective"], synthesis["adjectives"]),
        "synthesis.ratios": (keys["ratio"], synthesis["ratios"]),
    }
    check_cell(paths.CELL.format(**keys), grid)
    return [
        paths.CLS_METRICS.format(
            dataset=config["dataset"],
            fold=f,
            model=keys["model"],
            trainset=TextSet(rank(f), keys["adjective"], int(keys["ratio"])).name,
        )
        for f in folds(config)
    ]


def augmented_trainsets(config: Config, rank: int) -> list[str]:
    """A fold's augmented classifier sets of its chosen `rank` (Table 2 has no base-model rows)."""
    return TextSet.grid(config, [rank])


def augmented_models(config: Config, keys: Keys, rank: int) -> list[str]:
    """The weights of each augmented set of the fold and model (aligned with the above)."""
    where = {"dataset": keys["dataset"], "fold": keys["fold"], "model": keys["model"]}
    return [
        paths.CLS_WEIGHTS.format(**where, trainset=t) for t in augmented_trainsets(config, rank)
    ]


def fold_synthetic_sets(config: Config, keys: Keys, ranks: Sequence[int]) -> list[str]:
    """The fold's synthetic sets of `ranks`, one per adjective."""
    where = {"dataset": keys["dataset"], "fold": keys["fold"]}
    return expand(
        paths.SYNTH_MANIFEST, **where, rank=ranks, adjective=config["synthesis"]["adjectives"]
    )


def lora_weights(keys: Keys) -> str | list[str]:
    """The fold's LoRA of the set's rank; rank 0 samples the base model without one."""
    return [] if int(keys["rank"]) == 0 else paths.LORA_WEIGHTS.format(**keys)


def rank_selection_inputs(config: Config, keys: Keys) -> list[str]:
    """Quality of each rank's adjective-free set, when the rank is chosen by FID."""
    if config["synthesis"]["rank"] != "best":
        return []
    where = {"dataset": keys["dataset"], "fold": keys["fold"]}
    return expand(paths.QUALITY, **where, rank=lora_ranks(config), adjective="none")


def seg_cell_metrics(config: Config, keys: Keys) -> list[str]:
    """Only what one segmentation-table (or ablation-table) cell needs: its row's folds and the
    model's real ones."""
    seg = config["segmentation"]
    ablation = seg["ablation"] if keys["trainset"] == "real" else []  # ablation rows train on real
    grid = {
        "segmentation.models": (keys["model"], seg["models"] + ablation),
        "segmentation.trainsets": (keys["trainset"], seg_trainsets(config)),
        "segmentation.external": (keys["evaluated_on"], ["test", *seg["external"]]),
    }
    check_cell(paths.SEG_CELL.format(**keys), grid)
    wanted = sorted({keys["trainset"]} | {"real"} & set(seg["trainsets"]))
    return seg_metrics(config, [keys["model"]], wanted)


def figure_segmenters(config: Config, keys: Keys) -> list[str]:
    """The contour figure's segmenters: each model's on the figure's training set, of the fold."""
    where = {
        "dataset": keys["dataset"],
        "fold": keys["fold"],
        "trainset": seg_figure_trainset(config),
    }
    return expand(paths.SEG_WEIGHTS, model=config["segmentation"]["models"], **where)


def setting_controlnet(keys: Keys) -> str | list[str]:
    """The fold's fine-tuned ControlNet a `{condition}-{source}` pool samples with (not text)."""
    condition, _ = check_setting(keys["setting"])
    if condition == TEXT:
        return []
    return paths.CONTROLNET_MODEL.format(
        dataset=keys["dataset"], fold=keys["fold"], condition=condition
    )


def edge_model(config: Config, keys: Keys) -> str | list[str]:
    """The configured edge detector (segmentation.pairs.edge_model) where the job's condition
    is `edge`; none for mask and text conditions or when Canny detects the edges (null)."""
    condition = keys.get("condition") or check_setting(keys["setting"])[0]
    detector = config["segmentation"]["pairs"]["edge_model"]
    if condition != "edge" or not detector:
        return []
    return str(user_path(detector).absolute())


def multitask_metrics(config: Config) -> list[str]:
    mt = config["multitask"]
    where = {"dataset": config["dataset"], "fold": folds(config)}
    return expand(paths.MULTITASK_METRICS, **where, backbone=mt["backbones"], mode=mt["modes"])


def combined_part(keys: Keys, task: int) -> str:
    """The predictions a `combined` mode joins: task 0 seg's masks, task 1 cls's classes."""
    mode = parse_mode(keys["mode"]).parts()[task]
    where = {"dataset": keys["dataset"], "fold": keys["fold"], "backbone": keys["backbone"]}
    return paths.MULTITASK_PREDICTIONS.format(mode=mode, **where)


def multitask_fits(keys: Keys) -> list[str]:
    """The fit.json of every network a mode's predictions come from (both parts of `combined`)."""
    parsed = parse_mode(keys["mode"])
    modes = parsed.parts() if not parsed.trained else (keys["mode"],)
    where = {"dataset": keys["dataset"], "fold": keys["fold"], "backbone": keys["backbone"]}
    return [paths.MULTITASK_FIT.format(mode=mode, **where) for mode in modes]


def refined_predictions(keys: Keys) -> list[str]:
    """The PR predictions of a mode that predicts both class and mask, else none."""
    if not parse_mode(keys["mode"]).refinable:
        return []
    return [paths.MULTITASK_REFINED.format(**keys)]


def multitask_cell_metrics(config: Config, keys: Keys) -> list[str]:
    """Only what one multi-task row needs: its backbone and mode in every fold."""
    mt = config["multitask"]
    target = paths.MULTITASK_CELL.format(**keys)
    grid = {
        "multitask.backbones": (keys["backbone"], mt["backbones"]),
        "multitask.modes": (keys["mode"], mt["modes"]),
    }
    check_cell(target, grid)
    if keys["pr"] not in ("yes", "no"):
        raise MeddapError(
            f"target {target}: pr-{keys['pr']} is neither pr-yes (with prediction refining) "
            "nor pr-no"
        )
    if keys["pr"] == "yes" and not parse_mode(keys["mode"]).refinable:
        raise MeddapError(
            f"target {target}: mode {keys['mode']} does not predict both a class and a mask, so it "
            "has no PR row"
        )
    where = {"dataset": config["dataset"], "fold": folds(config)}
    return expand(paths.MULTITASK_METRICS, **where, backbone=keys["backbone"], mode=keys["mode"])


def lora_settings(config: Config, lora: dict[str, Any], dataset: str) -> dict[str, Any]:
    """The `lora` job settings; on a cross-domain target dataset, `cross_domain.epochs` epochs."""
    cross = config["cross_domain"]
    return {**lora, "epochs": cross["epochs"]} if dataset in cross["targets"] else lora


def adapted_quality(keys: Keys) -> str:
    """The quality JSON of one adapted generator's class-prompt set on its target's fold."""
    where = {"dataset": keys["target"], "fold": keys["fold"], "adjective": "none"}
    if keys["adaptation"] == "full":
        return paths.QUALITY_FULL.format(**where)
    return paths.QUALITY.format(rank=adaptation_rank(keys["adaptation"]), **where)


def cross_domain_quality(config: Config) -> list[str]:
    return [adapted_quality(keys) for keys in cross_domain_sets(config)]


def cross_domain_params(config: Config) -> list[str]:
    """params.json of each trained adaptation (the table's parameter counts), in set order."""
    return [
        paths.FULL_PARAMS.format(dataset=k["target"], fold=k["fold"])
        if k["adaptation"] == "full"
        else paths.LORA_PARAMS.format(
            dataset=k["target"], fold=k["fold"], rank=adaptation_rank(k["adaptation"])
        )
        for k in cross_domain_sets(config)
        if k["adaptation"] != "none"
    ]
