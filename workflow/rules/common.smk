# Shared names and input functions. No logic beyond wildcards and paths.
from meddap.registry import local_dataset_dir


wildcard_constraints:
    dataset=r"[a-z][a-z0-9_]*",
    fold=r"\d+",


DATASET = config["dataset"]


def dataset_entry(wildcards):
    return config["datasets"][wildcards.dataset]


def raw_dir(wildcards):
    """The user's own folder when `path:` names one, else the folder the fetch rule makes."""
    local = local_dataset_dir(dataset_entry(wildcards))
    return str(local) if local else f"results/raw/{wildcards.dataset}"


def all_targets():
    return [f"results/data/{DATASET}/splits.parquet"]
