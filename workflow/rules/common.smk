# Shared names and input functions: wildcards and paths only. Which targets a config asks for is
# meddap.run.plan; training-set names are meddap.trainsets; every path pattern is meddap.common.paths.
import json
from pathlib import Path

from meddap import trainsets
from meddap.common import paths
from meddap.common.hashing import file_sha256
from meddap.common.settings import job_params
from meddap.data.fingerprint import content_digest, model_digest
from meddap.data.registry import is_archive, local_dataset_dir, user_path
from meddap.diffusion.compat import check_models
from meddap.multitask.modes import BACKBONE_PATTERN, COMBINED_PATTERN, REFINABLE_PATTERN, TRAINED_PATTERN
from meddap.run import plan
from meddap.run.config import base_model_location, check_fold, check_segmenter, check_trainset
from meddap.seg.names import MODEL_WILDCARD
from meddap.trainsets.pairs import CONDITION_WILDCARD, SETTING_WILDCARD
from meddap.trainsets.text import ADJECTIVE


wildcard_constraints:
    dataset=r"[a-z][a-z0-9_]*",
    external=r"[a-z][a-z0-9_]*",
    fold=r"[^/]+",  # fold_splits checks it against folds.k
    rank=r"\d+",
    adjective=ADJECTIVE,
    model=MODEL_WILDCARD,
    trainset=trainsets.WILDCARDS["classifier"],
    backbone=BACKBONE_PATTERN,


CELL_NAME = r"[^/]+"  # each part of a cell target: its input function checks it against its key
SEG_TRAINSET = trainsets.WILDCARDS["segmenter"]

DATASET = config["dataset"]
LORA, SYNTH, QUALITY, CLS = config["lora"], config["synthesis"], config["quality"], config["classifier"]
SEG, MT, CROSS = config["segmentation"], config["multitask"], config["cross_domain"]
PAIRS = SEG["pairs"]
# resources and threads of the jobs whose rules have no config section of their own
CPU_RESOURCES = {k: v for k, v in config["resources"].items() if k != "threads"}
CPU_THREADS = config["resources"]["threads"]
SETTINGS = job_params(config)  # each section as the plain dict its jobs get (meddap.common.settings)
BASE_MODEL = (
    paths.TINY_SD
    if config["diffusion"]["base_model"] == "tiny"
    else base_model_location(config["diffusion"]["base_model"], Path(workflow.basedir))
)
LORA_RANKS = plan.lora_ranks(config)
SEG_FIGURE_TRAINSET = plan.seg_figure_trainset(config)
PAIRS_CONDITIONS = plan.pairs_conditions(config)


def fold_splits(wildcards):
    """The dataset's fold split, for a job of one of its `folds.k` folds."""
    check_fold(wildcards.fold, config["folds"]["k"], wildcards.dataset)
    return paths.SPLITS.format(dataset=wildcards.dataset)


def dataset_files(wildcards):
    """The source fingerprint of the dataset whose images a job reads (its recorded input)."""
    return paths.SOURCE.format(dataset=wildcards.dataset)


def dataset_entry(wildcards):
    return config["datasets"][wildcards.dataset]


def raw_dir(wildcards):
    """The user's own folder when `path:` names one (`ancient`: its content digest, a param,
    reruns jobs, not its mtime), else the folder the fetch rule makes."""
    local = local_dataset_dir(dataset_entry(wildcards))
    return ancient(str(local)) if local else paths.RAW.format(dataset=wildcards.dataset)


def path_archive(wildcards):
    """The `path:` archive of the dataset (by content, as above), or nothing."""
    entry = dataset_entry(wildcards)
    return [ancient(str(user_path(entry["path"])))] if "path" in entry and is_archive(entry["path"]) else []


def content_of(kind):
    """A param function: the content digest of the dataset's source if it is of `kind`, else ''."""
    return lambda wildcards: content_digest(wildcards.dataset, dataset_entry(wildcards), kind)


def release_folder(wildcards):
    """The dataset's folder and source fingerprint where folds.source is `release` (its official
    fold files are read there, and audited by the fingerprint), else nothing."""
    return [raw_dir(wildcards), dataset_files(wildcards)] if config["folds"]["source"] == "release" else []


def model_folder(wildcards):
    """The folder a model fingerprint lists: the base model or a condition's pretrained ControlNet."""
    part = wildcards.part
    return BASE_MODEL if part == "base" else controlnet_location(part.removeprefix("controlnet-"))


def model_content(wildcards):
    """The content digest of that folder when the DAG is built: its rerun trigger (not mtimes)."""
    return model_digest(model_folder(wildcards), wildcards.part)


def base_model_files(wildcards):
    """The built tiny model (a workflow output) or a local folder's fingerprint; a hub id is a param."""
    return [paths.TINY_SD] if BASE_MODEL == paths.TINY_SD else model_fingerprint(BASE_MODEL, "base")


def model_fingerprint(folder, part):
    """The fingerprint of a local model folder (its jobs' recorded input), none for a hub id."""
    return [paths.MODEL_FINGERPRINT.format(part=part)] if folder and Path(folder).is_dir() else []


def fold_rank(dataset, fold):
    """The LoRA rank that augments fold `fold` (read from the select_rank checkpoint if 'best')."""
    if SYNTH["rank"] != "best":
        return SYNTH["rank"]
    selection = checkpoints.select_rank.get(dataset=dataset, fold=fold).output.selection
    return json.loads(Path(selection).read_text())["rank"]


def ranks_of(dataset, chosen_only=False):
    """fold -> the ranks of its Table-1 sets (with `chosen_only`, its chosen rank alone)."""
    return lambda fold: [fold_rank(dataset, fold)] if chosen_only else plan.fold_ranks(config, fold_rank(dataset, fold))


def synthetic_manifest(wildcards):
    """The synthetic manifest a classifier's training set draws its prefix from (none for real)."""
    return _one(check_trainset(config, wildcards.model, wildcards.trainset).manifests(wildcards))


def seg_manifest(wildcards):
    """The curated manifest a segmenter trains on, once its model and training set are checked."""
    check_segmenter(config, wildcards.model, wildcards.trainset)
    return paths.CURATED.format(dataset=wildcards.dataset)


def seg_synthetic(wildcards):
    """The pair pool a segmenter's `{setting}-{r}to{s}` training set draws from (none for others)."""
    return _one(trainsets.parse(wildcards.trainset).manifests(wildcards))


def _one(manifests):
    """A training set's one synthetic manifest, or [] (the named input a job gets)."""
    return manifests[0] if manifests else []


def synthetic_files(wildcards):
    """The folders of the images a training set's manifest lists: what its job reads (audited)."""
    return trainsets.parse(wildcards.trainset).files(wildcards)


def table_outputs(name, caption=None):
    """Parquet, CSV (shown in the HTML report, with report/{caption or name}.rst) and Markdown
    versions of results/tables/{name}."""
    caption = f"../report/{caption or name}.rst"
    return {
        "parquet": paths.TABLE.format(name=name, ext="parquet"),
        "csv": report(paths.TABLE.format(name=name, ext="csv"), caption=caption, category="Tables"),
        "markdown": paths.TABLE.format(name=name, ext="md"),
    }


def log_file(rule, pattern=""):
    """The log of one job of `rule`: results/logs/{rule}/{pattern}.log (the rule's own wildcards)."""
    return f"{paths.LOGS.format(rule=rule)}/{pattern}.log" if pattern else f"{paths.LOGS.format(rule=rule)}.log"


def controlnet_location(condition):
    """The configured pretrained ControlNet of `condition` (a local folder, a hub id or '')."""
    return base_model_location(PAIRS["controlnet"][condition] or "", Path(workflow.basedir))


def pretrained_controlnet_files(wildcards):
    """The fingerprint of a local pretrained ControlNet folder (its recorded input)."""
    return model_fingerprint(controlnet_location(wildcards.condition), f"controlnet-{wildcards.condition}")


# every resolution and each pretrained ControlNet the plan samples with, against the base model
check_models(config, BASE_MODEL, {c: controlnet_location(c) for c in PAIRS_CONDITIONS})
