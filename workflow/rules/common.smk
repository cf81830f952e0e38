# Shared names and input functions. No logic beyond wildcards and paths.
import json
from pathlib import Path

from meddap.common.settings import job_params
from meddap.data.registry import local_dataset_dir
from meddap.common.trainsets import parse_trainset


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
CPU_RESOURCES = config["resources"]  # every rule without its own section
SETTINGS = job_params(config)  # each section as the plain dict its jobs get (meddap.common.settings)
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


def fold_trainsets(dataset, fold):
    """Training sets of one fold: real, and real + each nested synthetic prefix of its rank."""
    rank = fold_rank(dataset, fold)
    return ["real"] + [f"r{rank}-{a}-{r}" for a in SYNTH["adjectives"] for r in SYNTH["ratios"]]


def all_metrics(wildcards):
    pattern = "results/cls/{dataset}/fold{fold}/{model}/{trainset}/metrics.json"
    return [
        pattern.format(dataset=DATASET, fold=f, model=m, trainset=t)
        for f in FOLDS
        for m in CLS["models"]
        for t in fold_trainsets(DATASET, f)
    ]


def all_quality(wildcards):
    pattern = "results/quality/{dataset}/fold{fold}/r{rank}/{adjective}.json"
    return [
        pattern.format(dataset=DATASET, fold=f, rank=fold_rank(DATASET, f), adjective=a)
        for f in FOLDS
        for a in SYNTH["adjectives"]
    ]


def cell_metrics(wildcards):
    """Only what one Table-1 cell needs: its setting's classifier in every fold."""
    pattern = "results/cls/{dataset}/fold{fold}/{model}/r{rank}-{adjective}-{ratio}/metrics.json"
    return [
        pattern.format(dataset=DATASET, fold=f, rank=fold_rank(DATASET, f), **wildcards)
        for f in FOLDS
    ]


def cell_quality(wildcards):
    pattern = "results/quality/{dataset}/fold{fold}/r{rank}/{adjective}.json"
    return [
        pattern.format(dataset=DATASET, fold=f, rank=fold_rank(DATASET, f), adjective=wildcards.adjective)
        for f in FOLDS
    ]


def synthetic_evaluations(wildcards):
    """Fig. 1a: each fold's real-only classifiers on each synthetic set of the fold's rank."""
    pattern = "results/cls/{dataset}/fold{fold}/{model}/real/on_synthetic/r{rank}-{adjective}.json"
    return [
        pattern.format(dataset=wildcards.dataset, fold=f, model=m, rank=fold_rank(wildcards.dataset, f), adjective=a)
        for f in FOLDS
        for m in CLS["models"]
        for a in SYNTH["adjectives"]
    ]


def augmented_models(wildcards):
    """Every augmented classifier of the fold and model; Fig. 2 shows Table 2's best one."""
    pattern = "results/cls/{dataset}/fold{fold}/{model}/{trainset}/model.safetensors"
    return [
        pattern.format(dataset=wildcards.dataset, fold=wildcards.fold, model=wildcards.model, trainset=t)
        for t in fold_trainsets(wildcards.dataset, wildcards.fold)
        if t != "real"
    ]


def table_outputs(name):
    """Parquet, CSV (shown in the HTML report) and Markdown versions of results/tables/{name}."""
    return {
        "parquet": f"results/tables/{name}.parquet",
        "csv": report(f"results/tables/{name}.csv", caption=f"../report/{name}.rst", category="Tables"),
        "markdown": f"results/tables/{name}.md",
    }


def stage_targets():
    """Targets known before any rank is chosen: splits, every LoRA, every fold's rank choice."""
    lora = "results/lora/{dataset}/fold{fold}/r{rank}/pytorch_lora_weights.safetensors"
    selection = "results/quality/{dataset}/fold{fold}/rank_selection.json"
    return [
        f"results/data/{DATASET}/splits.parquet",
        *expand(lora, dataset=DATASET, fold=FOLDS, rank=LORA["ranks"]),
        *expand(selection, dataset=DATASET, fold=FOLDS),
        *expand("results/tables/table{n}.md", n=(1, 2, 3)),
        f"results/figures/fig1a_{DATASET}_real_only_on_synthetic.png",
        *expand("results/figures/fig2_{dataset}_gradcam_{model}_fold0.png", dataset=DATASET, model=CLS["models"]),
        *expand("results/figures/samples_{dataset}_fold{fold}.png", dataset=DATASET, fold=FOLDS),
    ]
