# Shared names and input functions. No logic beyond wildcards and paths.
from meddap.registry import local_dataset_dir


wildcard_constraints:
    dataset=r"[a-z][a-z0-9_]*",
    fold=r"\d+",
    rank=r"\d+",


DATASET = config["dataset"]
LORA = config["lora"]
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


def all_targets():
    lora = expand(
        "results/lora/{dataset}/fold{fold}/r{rank}/pytorch_lora_weights.safetensors",
        dataset=DATASET,
        fold=FOLDS,
        rank=LORA["ranks"],
    )
    return [f"results/data/{DATASET}/splits.parquet", *lora]
