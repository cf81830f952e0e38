# Shared names and input functions. No logic beyond wildcards and paths.
import json
from pathlib import Path

from meddap.registry import local_dataset_dir
from meddap.trainsets import parse_trainset


wildcard_constraints:
    dataset=r"[a-z][a-z0-9_]*",
    fold=r"\d+",
    rank=r"\d+",
    adjective=r"[a-z]+(-[a-z]+)*",
    model=r"[a-z0-9_]+",
    trainset=r"real|r\d+-[a-z]+(-[a-z]+)*-\d+",


DATASET = config["dataset"]
LORA = config["lora"]
SYNTH = config["synthesis"]
QUALITY = config["quality"]
CLS = config["classifier"]
FOLDS = range(config["folds"]["k"])
TINY_SD = "results/models/tiny-sd"
BASE_MODEL = TINY_SD if config["diffusion"]["base_model"] == "tiny" else config["diffusion"]["base_model"]


def dataset_entry(wildcards):
    return config["datasets"][wildcards.dataset]


def raw_dir(wildcards):
    """The user's own folder when `path:` names one, else the folder the fetch rule makes."""
    local = local_dataset_dir(dataset_entry(wildcards))
    return str(local) if local else f"results/raw/{wildcards.dataset}"


def base_model_files(wildcards):
    """The built tiny model is a workflow output; hub ids and local folders are read as params."""
    return [TINY_SD] if BASE_MODEL == TINY_SD else []


def rank_selection_inputs(wildcards):
    """Quality of each rank's adjective-free set, when the rank is chosen by FID."""
    if SYNTH["rank"] != "best":
        return []
    pattern = "results/quality/{dataset}/fold{fold}/r{rank}/none.json"
    return expand(pattern, dataset=wildcards.dataset, fold=wildcards.fold, rank=LORA["ranks"])


def fold_rank(dataset, fold):
    """The LoRA rank that augments fold `fold` (read from the select_rank checkpoint if 'best')."""
    if SYNTH["rank"] != "best":
        return SYNTH["rank"]
    selection = checkpoints.select_rank.get(dataset=dataset, fold=fold).output.selection
    return json.loads(Path(selection).read_text())["rank"]


def chosen_synthetic_sets(wildcards):
    """The fold's synthetic sets of its chosen rank, one per adjective."""
    rank = fold_rank(wildcards.dataset, wildcards.fold)
    pattern = "results/synth/{dataset}/fold{fold}/r{rank}/{adjective}/manifest.parquet"
    return expand(pattern, dataset=wildcards.dataset, fold=wildcards.fold, rank=rank, adjective=SYNTH["adjectives"])


def synthetic_manifest(wildcards):
    """The synthetic set a training set `r{rank}-{adjective}-{ratio}` draws its prefix from."""
    parsed = parse_trainset(wildcards.trainset)
    if parsed is None:
        return []
    rank, adjective, _ = parsed
    return f"results/synth/{wildcards.dataset}/fold{wildcards.fold}/r{rank}/{adjective}/manifest.parquet"


def stage_targets():
    """Targets known before any rank is chosen: splits, every LoRA, every fold's rank choice."""
    lora = "results/lora/{dataset}/fold{fold}/r{rank}/pytorch_lora_weights.safetensors"
    selection = "results/quality/{dataset}/fold{fold}/rank_selection.json"
    return [
        f"results/data/{DATASET}/splits.parquet",
        *expand(lora, dataset=DATASET, fold=FOLDS, rank=LORA["ranks"]),
        *expand(selection, dataset=DATASET, fold=FOLDS),
    ]


def fold_targets(dataset, fold):
    """What one fold adds once its rank is known: synthetic-set quality and classifiers."""
    rank = fold_rank(dataset, fold)
    adjectives, ratios = SYNTH["adjectives"], SYNTH["ratios"]
    quality = [f"results/quality/{dataset}/fold{fold}/r{rank}/{a}.json" for a in adjectives]
    trainsets = ["real"] + [f"r{rank}-{a}-{r}" for a in adjectives for r in ratios]
    cls = "results/cls/{dataset}/fold{fold}/{model}/{trainset}/metrics.json"
    figure = f"results/figures/samples_{dataset}_fold{fold}.png"
    return [*quality, figure, *expand(cls, dataset=dataset, fold=fold, model=CLS["models"], trainset=trainsets)]


def augmented_targets(wildcards):
    return [t for fold in FOLDS for t in fold_targets(DATASET, fold)]
