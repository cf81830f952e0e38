"""Grid expansion: which results a validated config asks for, as plain functions of it.

The rules (workflow/rules/*.smk) call these and keep only wildcards, input functions and paths.
Where `synthesis.rank` is `best` a checkpoint chooses each fold's LoRA rank, so the functions of
the text-to-image sets take `ranks(fold)`, the ranks of a fold's sets, from the caller.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from snakemake.io import expand

from meddap.common import paths
from meddap.trainsets import CLASSIFIER, SEGMENTER, PairSet, TextSet
from meddap.trainsets.pairs import TEXT, check_setting

Config = dict[str, Any]
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


def masked_settings(config: Config) -> list[str]:
    """The mask-conditioned pools' settings (none without segmenters)."""
    seg = config["segmentation"]
    return seg["synthesis"]["settings"] if seg["models"] else []


def masked_conditions(config: Config) -> list[str]:
    """The conditions the pools sample with a ControlNet (text has none)."""
    return sorted({check_setting(s)[0] for s in masked_settings(config)} - {TEXT})


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


def quality_sets(config: Config, adjectives: Sequence[str], ranks: Ranks) -> list[dict]:
    """(fold, rank, adjective) of each fold's synthetic set of each of its ranks, per adjective."""
    return [
        {"fold": f, "rank": k, "adjective": a}
        for f in folds(config)
        for k in ranks(f)
        for a in adjectives
    ]


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


def masked_quality(config: Config) -> list[str]:
    return expand(
        paths.MASKED_QUALITY,
        dataset=config["dataset"],
        fold=folds(config),
        setting=masked_settings(config),
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
            *(["seg_ratio_table"] if masked_settings(config) else []),
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
    clinical = "mask-clinical" in masked_settings(config)
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
        *masked_quality(config),
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
