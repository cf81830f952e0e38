# Shared names and input functions. No logic beyond wildcards and paths; every path pattern
# comes from meddap.common.paths.
import json
from pathlib import Path

from meddap.common import paths
from meddap.common.errors import MeddapError
from meddap.common.settings import job_params
from meddap.common.trainsets import parse_trainset
from meddap.seg.names import MIXING_SOURCE, TEXT, check_setting, mixing_token, ratio_token, synthetic_of
from meddap.data.fingerprint import content_digest, model_digest
from meddap.common.hashing import file_sha256
from meddap.data.registry import is_archive, local_dataset_dir, user_path
from meddap.run.config import base_model_location, check_cell, check_fold, check_pool, check_segmenter, check_trainset
from meddap.multitask.modes import REFINABLE_PATTERN, TRAINED_PATTERN, parse_mode
from meddap.lora.names import adaptation_rank
from meddap.diffusion.compat import check_models


wildcard_constraints:
    dataset=r"[a-z][a-z0-9_]*",
    external=r"[a-z][a-z0-9_]*",
    fold=r"[^/]+",  # fold_splits checks it against folds.k
    rank=r"\d+",
    adjective=r"[a-z]+(-[a-z]+)*",
    model=r"[a-z0-9_]+(-[a-z0-9]+)*",  # segmenters: dsunet-s4-adv
    trainset=r"real|r\d+-[a-z]+(-[a-z]+)*-\d+",
    backbone=r"unetpp_ds|dsunet-s4",  # meddap.multitask.models.BACKBONES


CELL_NAME = r"[^/]+"  # each part of a cell target: its input function checks it against its key

DATASET = config["dataset"]
LORA = config["lora"]
SYNTH = config["synthesis"]
QUALITY = config["quality"]
CLS = config["classifier"]
CPU_RESOURCES = config["resources"]  # every rule without its own section
SETTINGS = job_params(config)  # each section as the plain dict its jobs get (meddap.common.settings)
FOLDS = range(config["folds"]["k"])
BASE_MODEL = (
    paths.TINY_SD
    if config["diffusion"]["base_model"] == "tiny"
    else base_model_location(config["diffusion"]["base_model"], Path(workflow.basedir))
)
LORA_RANKS = [r for r in LORA["ranks"] if r > 0]  # trained; rank 0 is the base model without LoRA
BASE_ROW = 0 in LORA["ranks"]  # Table 1 then holds the base model's sets as rows r0-...


def fold_splits(wildcards):
    """The dataset's fold split, for a job of one of its `folds.k` folds."""
    check_fold(wildcards.fold, config["folds"]["k"], wildcards.dataset)
    return paths.SPLITS.format(dataset=wildcards.dataset)


def dataset_entry(wildcards):
    return config["datasets"][wildcards.dataset]


def raw_dir(wildcards):
    """The user's own folder when `path:` names one, else the folder the fetch rule makes.

    The user's folder is `ancient`: its content digest (a param), not its mtime, reruns jobs.
    """
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
    if config["folds"]["source"] != "release":
        return []
    return [raw_dir(wildcards), dataset_files(wildcards)]


def dataset_files(wildcards):
    """The source fingerprint of the dataset whose images a job reads (its recorded input)."""
    return paths.SOURCE.format(dataset=wildcards.dataset)


def base_model_files(wildcards):
    """The built tiny model (a workflow output) or a local folder's fingerprint; a hub id is a param."""
    if BASE_MODEL == paths.TINY_SD:
        return [paths.TINY_SD]
    return model_fingerprint(BASE_MODEL, "base")


def model_fingerprint(folder, part):
    """The fingerprint of a local model folder (its jobs' recorded input), none for a hub id."""
    return [paths.MODEL_FINGERPRINT.format(part=part)] if folder and Path(folder).is_dir() else []


def model_folder(wildcards):
    """The folder a model fingerprint lists: the base model or a condition's pretrained ControlNet."""
    part = wildcards.part
    return BASE_MODEL if part == "base" else controlnet_location(part.removeprefix("controlnet-"))


def model_content(wildcards):
    """The content digest of that folder when the DAG is built: its rerun trigger (not mtimes)."""
    return model_digest(model_folder(wildcards), wildcards.part)


def lora_weights(wildcards):
    """The fold's LoRA of the set's rank; rank 0 samples the base model without one."""
    return [] if int(wildcards.rank) == 0 else paths.LORA_WEIGHTS.format(**dict(wildcards.items()))


def rank_selection_inputs(wildcards):
    """Quality of each rank's adjective-free set, when the rank is chosen by FID."""
    if SYNTH["rank"] != "best":
        return []
    return expand(paths.QUALITY, dataset=wildcards.dataset, fold=wildcards.fold, rank=LORA_RANKS, adjective="none")


def fold_rank(dataset, fold):
    """The LoRA rank that augments fold `fold` (read from the select_rank checkpoint if 'best')."""
    if SYNTH["rank"] != "best":
        return SYNTH["rank"]
    selection = checkpoints.select_rank.get(dataset=dataset, fold=fold).output.selection
    return json.loads(Path(selection).read_text())["rank"]


def fold_synthetic_sets(wildcards):
    """The fold's synthetic sets of its ranks (chosen, and 0 with BASE_ROW), one per adjective."""
    ranks = fold_ranks(wildcards.dataset, wildcards.fold)
    return expand(paths.SYNTH_MANIFEST, dataset=wildcards.dataset, fold=wildcards.fold, rank=ranks, adjective=SYNTH["adjectives"])


def synthetic_manifest(wildcards):
    """The synthetic set a training set `r{rank}-{adjective}-{ratio}` draws its prefix from, or
    the mask-conditioned pool of a `{setting}-1to{k}` one."""
    check_trainset(config, wildcards.model, wildcards.trainset)
    if synthetic_of(wildcards.trainset) is not None:
        return seg_synthetic(wildcards)
    parsed = parse_trainset(wildcards.trainset)
    if parsed is None:
        return []
    rank, adjective, _ = parsed
    return paths.SYNTH_MANIFEST.format(dataset=wildcards.dataset, fold=wildcards.fold, rank=rank, adjective=adjective)


def fold_ranks(dataset, fold):
    """The ranks of a fold's Table-1 sets: its chosen rank, and 0 (the base model) with BASE_ROW."""
    return sorted({fold_rank(dataset, fold), *([0] if BASE_ROW else [])})


def chosen_rank(dataset, fold):
    """The fold's chosen rank only (a Table-1 cell's sets)."""
    return [fold_rank(dataset, fold)]


def fold_trainsets(dataset, fold):
    """Training sets of one fold: real, and real + each nested synthetic prefix of each of its ranks."""
    return ["real"] + [
        f"r{k}-{a}-{r}" for k in fold_ranks(dataset, fold) for a in SYNTH["adjectives"] for r in SYNTH["ratios"]
    ]


def external_metrics(wildcards):
    """Table 3's runs: every classifier, once there are external sets to score them on."""
    if not CLS["external"]:
        raise MeddapError("Table 3 reports external accuracy, but config key 'classifier.external' is [] (the default target leaves Table 3 out then)")
    return all_metrics(wildcards)


def all_metrics(wildcards):
    return [
        paths.CLS_METRICS.format(dataset=DATASET, fold=f, model=m, trainset=t)
        for f in FOLDS
        for m in CLS["models"]
        for t in fold_trainsets(DATASET, f)
    ]


def quality_sets(adjectives, ranks=fold_ranks):
    """(fold, rank, adjective) of each fold's synthetic set of each of `ranks(dataset, fold)`, per adjective."""
    return [{"fold": f, "rank": k, "adjective": a} for f in FOLDS for k in ranks(DATASET, f) for a in adjectives]


def all_quality(wildcards):
    return [paths.QUALITY.format(dataset=DATASET, **keys) for keys in quality_sets(SYNTH["adjectives"])]


def cell_metrics(wildcards):
    """Only what one Table-1 cell needs: its setting's classifier in every fold."""
    grid = {
        "classifier.models": (wildcards.model, CLS["models"]),
        "synthesis.adjectives": (wildcards.adjective, SYNTH["adjectives"]),
        "synthesis.ratios": (wildcards.ratio, SYNTH["ratios"]),
    }
    check_cell(paths.CELL.format(**dict(wildcards.items())), grid)
    return [
        paths.CLS_METRICS.format(
            dataset=DATASET, fold=f, model=wildcards.model, trainset=f"r{fold_rank(DATASET, f)}-{wildcards.adjective}-{wildcards.ratio}"
        )
        for f in FOLDS
    ]


def cell_quality(wildcards):
    return [paths.QUALITY.format(dataset=DATASET, **keys) for keys in quality_sets([wildcards.adjective], chosen_rank)]


def synthetic_evaluations(wildcards):
    """Fig. 1a: each fold's real-only classifiers on each synthetic set of the fold's ranks."""
    return dataset_synthetic_evaluations(wildcards.dataset)


def dataset_synthetic_evaluations(dataset):
    """Fig. 1a's results of `dataset`, every fold, rank, model and adjective."""
    return [
        paths.ON_SYNTHETIC.format(dataset=dataset, fold=f, model=m, rank=k, adjective=a)
        for f in FOLDS
        for k in fold_ranks(dataset, f)
        for m in CLS["models"]
        for a in SYNTH["adjectives"]
    ]


def augmented_trainsets(wildcards):
    """The fold's augmented training sets of its chosen rank (Table 2 has no base-model rows);
    Fig. 2 shows Table 2's best one."""
    rank = fold_rank(wildcards.dataset, wildcards.fold)
    return [f"r{rank}-{a}-{r}" for a in SYNTH["adjectives"] for r in SYNTH["ratios"]]


def augmented_models(wildcards):
    """The weights of each augmented training set of the fold and model (aligned with the above)."""
    return [
        paths.CLS_WEIGHTS.format(dataset=wildcards.dataset, fold=wildcards.fold, model=wildcards.model, trainset=t)
        for t in augmented_trainsets(wildcards)
    ]


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


def stage_targets():
    """Targets known before any rank is chosen: splits, the curation report, every LoRA, every
    fold's rank choice."""
    return [
        paths.SPLITS.format(dataset=DATASET),
        paths.CURATION_REPORT.format(dataset=DATASET),
        paths.CURATION_FIGURE.format(dataset=DATASET),
        *expand(paths.LORA_WEIGHTS, dataset=DATASET, fold=FOLDS, rank=LORA_RANKS),
        *expand(paths.RANK_SELECTION, dataset=DATASET, fold=FOLDS),
        *expand(paths.TABLE, name=["table1", "table2", *(["table3"] if CLS["external"] else [])], ext="md"),
        paths.FIG1A.format(dataset=DATASET),
        *expand(paths.FIG2, dataset=DATASET, model=CLS["models"], fold=0),
        *expand(paths.SAMPLES, dataset=DATASET, fold=FOLDS),
        *expand(paths.TABLE, name=["seg_table"] if SEG["models"] else [], ext="md"),
        *expand(paths.TABLE, name=["seg_ablation"] if SEG["ablation"] else [], ext="md"),
        *expand(paths.TABLE, name=["seg_ratio_table"] if MASKED_SETTINGS else [], ext="md"),
        *all_masked_quality(None),
        *([paths.CLINICAL_FIGURE.format(dataset=DATASET, fold=0)] if "mask-clinical" in MASKED_SETTINGS else []),
        *([paths.SEG_FIGURE.format(dataset=DATASET, fold=0)] if SEG["models"] else []),
        *expand(paths.TABLE, name=MULTITASK_TABLES if MT["backbones"] and MT["modes"] else [], ext="md"),
        *expand(paths.TABLE, name=["cross_domain_table"] if CROSS_TARGETS else [], ext="md"),
    ]


def summary_tables():
    """The Markdown tables the run summary gathers: every table among the stage targets."""
    return [t for t in stage_targets() if t.startswith(paths.TABLE.split("{")[0]) and t.endswith(".md")]


# --- segmentation -------------------------------------------------------------------------
SEG = config["segmentation"]


def seg_manifest(wildcards):
    """The curated manifest a segmenter trains on, once its model and training set are known."""
    check_segmenter(wildcards.model, wildcards.trainset)
    return paths.CURATED.format(dataset=wildcards.dataset)


SEG_TRAINSET = r"real|aug-[a-z]+|[a-z]+-[a-z]+-(1to[1-9]\d*|0to1)(-mix[0-9.]+p[0-9]+)?"  # meddap.seg.names
MASKED = SEG["synthesis"]
MASKED_SETTINGS = MASKED["settings"] if SEG["models"] else []
SYNTHETIC_TRAINSETS = [f"{s}-{ratio_token(r)}" for s in MASKED_SETTINGS for r in MASKED["ratios"]]
# seed 002's patch mixing: every real-mask setting (its images have real parents) but text ones
# (not pixel-aligned: they follow no mask) x ratio, 0:1 included (all its pairs have parents),
# x lambda x p
MIXED_TRAINSETS = [
    f"{s}-{ratio_token(r)}-{mixing_token(lam, p)}"
    for s in MASKED_SETTINGS
    if check_setting(s)[1] == MIXING_SOURCE and check_setting(s)[0] != TEXT
    for r in MASKED["ratios"]
    for lam in MASKED["mixing"]["lambdas"]
    for p in MASKED["mixing"]["patches"]
]
SYNTHETIC_TRAINSETS += MIXED_TRAINSETS
# the classifiers on the same pools: every setting's 1:k sets (0:1 would have no normal image)
CLS_MASKED_TRAINSETS = [t for t in SYNTHETIC_TRAINSETS if synthetic_of(t).real and not synthetic_of(t).mixed]
CLS_MASKED_TRAINSETS = CLS_MASKED_TRAINSETS if MASKED["classifiers"] else []
CLS_TRAINSET = r"real|r\d+-[a-z]+(-[a-z]+)*-\d+|[a-z]+-[a-z]+-1to[1-9]\d*"  # meddap.seg.names
SEG_TRAINSETS = SEG["trainsets"] + SYNTHETIC_TRAINSETS  # rows of the segmentation table


def seg_synthetic(wildcards):
    """The pair pool a `{setting}-{r}to{s}` training set draws from (its ratio fitting in the
    pool); none for the others."""
    wanted = check_pool(wildcards.trainset, MASKED["pool"])
    if wanted is None:
        return []
    return paths.MASKED_MANIFEST.format(dataset=wildcards.dataset, fold=wildcards.fold, setting=wanted.setting)


def seg_synthetic_files(wildcards):
    """The image and mask folders of that pool: the files the segmenter reads (audited). A mixed
    set's real parents are train images of the curated manifest, already inputs (dataset_files)."""
    pool = seg_synthetic(wildcards)
    if not pool:
        return []
    keys = {"dataset": wildcards.dataset, "fold": wildcards.fold, "setting": synthetic_of(wildcards.trainset).setting}
    return [paths.MASKED_IMAGES.format(**keys), paths.MASKED_MASKS.format(**keys)]


def setting_controlnet(wildcards):
    """The fold's fine-tuned ControlNet a `{condition}-{source}` pool samples with; none for text."""
    condition, _ = check_setting(wildcards.setting)
    if condition == TEXT:
        return []
    return paths.CONTROLNET_MODEL.format(dataset=wildcards.dataset, fold=wildcards.fold, condition=condition)


def edge_model(wildcards):
    """The configured edge detector (segmentation.synthesis.edge_model) where the job's condition
    is `edge`; none for mask and text conditions or when Canny detects the edges (null)."""
    condition = wildcards.condition if "condition" in wildcards.keys() else check_setting(wildcards.setting)[0]
    if condition != "edge" or not MASKED["edge_model"]:
        return []
    return str(user_path(MASKED["edge_model"]).absolute())


def controlnet_location(condition):
    """The configured pretrained ControlNet of `condition` (a local folder, a hub id or '')."""
    return base_model_location(MASKED["controlnet"][condition] or "", Path(workflow.basedir))


def pretrained_controlnet(wildcards):
    return controlnet_location(wildcards.condition)


# every resolution and each pretrained ControlNet the plan samples with, against the base model
MASKED_CONDITIONS = sorted({check_setting(s)[0] for s in MASKED_SETTINGS} - {TEXT})
check_models(config, BASE_MODEL, {c: controlnet_location(c) for c in MASKED_CONDITIONS})


def pretrained_controlnet_files(wildcards):
    """The fingerprint of a local pretrained ControlNet folder (its recorded input)."""
    return model_fingerprint(pretrained_controlnet(wildcards), f"controlnet-{wildcards.condition}")


def all_masked_quality(wildcards):
    return expand(paths.MASKED_QUALITY, dataset=DATASET, fold=FOLDS, setting=MASKED_SETTINGS)


def external_dataset_files(wildcards):
    """The source fingerprint and masks of the external dataset a segmenter is scored on."""
    return [paths.SOURCE.format(dataset=wildcards.external), paths.MASKS.format(dataset=wildcards.external)]


def seg_cell_metrics(wildcards):
    """Only what one segmentation-table (or ablation-table) cell needs: its row's folds and the
    model's real ones."""
    ablation = SEG["ablation"] if wildcards.trainset == "real" else []  # ablation rows train on real
    grid = {
        "segmentation.models": (wildcards.model, SEG["models"] + ablation),
        "segmentation.trainsets": (wildcards.trainset, SEG_TRAINSETS),
        "segmentation.external": (wildcards.evaluated_on, ["test", *SEG["external"]]),
    }
    check_cell(paths.SEG_CELL.format(**dict(wildcards.items())), grid)
    trainsets = sorted({wildcards.trainset} | {"real"} & set(SEG["trainsets"]))
    return expand(paths.SEG_METRICS, dataset=DATASET, fold=FOLDS, model=wildcards.model, trainset=trainsets)


SEG_FIGURE_TRAINSET = "real" if "real" in SEG["trainsets"] else SEG["trainsets"][0]


def figure_segmenters(wildcards):
    """The contour figure's segmenters: each model's on the figure's training set, of the fold."""
    keys = {"dataset": wildcards.dataset, "fold": wildcards.fold, "trainset": SEG_FIGURE_TRAINSET}
    return expand(paths.SEG_WEIGHTS, model=SEG["models"], **keys)


def all_seg_metrics(wildcards):
    return expand(paths.SEG_METRICS, dataset=DATASET, fold=FOLDS, model=SEG["models"], trainset=SEG_TRAINSETS)


def ratio_seg_metrics(wildcards):
    """The ratio table's runs: each model's real and synthetic training sets in every fold."""
    trainsets = ["real", *SYNTHETIC_TRAINSETS]
    return expand(paths.SEG_METRICS, dataset=DATASET, fold=FOLDS, model=SEG["models"], trainset=trainsets)


def ratio_cls_metrics(wildcards):
    """The ratio table's AUC runs: each classifier on real and on the pools' 1:k sets, every fold."""
    if not CLS_MASKED_TRAINSETS:
        return []
    trainsets = ["real", *CLS_MASKED_TRAINSETS]
    return expand(paths.CLS_METRICS, dataset=DATASET, fold=FOLDS, model=CLS["models"], trainset=trainsets)


def ablation_seg_metrics(wildcards):
    """Every fold of each `segmentation.ablation` model, trained on real (seed 003's Table 2)."""
    return expand(paths.SEG_METRICS, dataset=DATASET, fold=FOLDS, model=SEG["ablation"], trainset="real")


# --- multi-task (seed 004) ----------------------------------------------------------------
MT = config["multitask"]
MULTITASK_TABLES = ["multitask_table5", "multitask_per_class"]


def combined_part(task):
    """The predictions a `combined` mode joins: task 0 seg's masks, task 1 cls's classes."""

    def part(wildcards):
        mode = parse_mode(wildcards.mode).parts()[task]
        keys = {"dataset": wildcards.dataset, "fold": wildcards.fold, "backbone": wildcards.backbone}
        return paths.MULTITASK_PREDICTIONS.format(mode=mode, **keys)

    return part


def multitask_fits(wildcards):
    """The fit.json of every network a mode's predictions come from (both parts of `combined`)."""
    parsed = parse_mode(wildcards.mode)
    modes = parsed.parts() if not parsed.trained else (wildcards.mode,)
    keys = {"dataset": wildcards.dataset, "fold": wildcards.fold, "backbone": wildcards.backbone}
    return [paths.MULTITASK_FIT.format(mode=mode, **keys) for mode in modes]


def refined_predictions(wildcards):
    """The PR predictions of a mode that predicts both class and mask, else none."""
    if not parse_mode(wildcards.mode).refinable:
        return []
    return [paths.MULTITASK_REFINED.format(**dict(wildcards.items()))]


def all_multitask_metrics(wildcards):
    return expand(paths.MULTITASK_METRICS, dataset=DATASET, fold=FOLDS, backbone=MT["backbones"], mode=MT["modes"])


def multitask_cell_metrics(wildcards):
    """Only what one multi-task row needs: its backbone and mode in every fold."""
    grid = {"multitask.backbones": (wildcards.backbone, MT["backbones"]), "multitask.modes": (wildcards.mode, MT["modes"])}
    check_cell(paths.MULTITASK_CELL.format(**dict(wildcards.items())), grid)
    if wildcards.pr not in ("yes", "no"):
        target = paths.MULTITASK_CELL.format(**dict(wildcards.items()))
        raise MeddapError(f"target {target}: pr-{wildcards.pr} is neither pr-yes (with prediction refining) nor pr-no")
    if wildcards.pr == "yes" and not parse_mode(wildcards.mode).refinable:
        target = paths.MULTITASK_CELL.format(**dict(wildcards.items()))
        raise MeddapError(f"target {target}: mode {wildcards.mode} does not predict both a class and a mask, so it has no PR row")
    return expand(paths.MULTITASK_METRICS, dataset=DATASET, fold=FOLDS, backbone=wildcards.backbone, mode=wildcards.mode)


# --- cross-domain adaptation (seed 001's Table 2) -----------------------------------------
CROSS = config["cross_domain"]
CROSS_TARGETS = CROSS["targets"]
ADAPTATIONS = ["none", *(f"r{k}" for k in CROSS["ranks"]), *(["full"] if CROSS["full"] else [])]


def lora_settings(wildcards):
    """The `lora` section; on a cross-domain target dataset, `cross_domain.epochs` epochs."""
    if wildcards.dataset not in CROSS_TARGETS:
        return SETTINGS["lora"]
    return {**SETTINGS["lora"], "epochs": CROSS["epochs"]}


def full_finetune_settings(wildcards):
    """Full fine-tuning trains as the target's LoRAs do, at `cross_domain.full_learning_rate`."""
    return {**lora_settings(wildcards), "learning_rate": CROSS["full_learning_rate"]}


def cross_domain_sets():
    """(target, fold, adaptation) of every cell of the cross-domain table."""
    return [{"target": t, "fold": f, "adaptation": a} for t in CROSS_TARGETS for f in CROSS["folds"] for a in ADAPTATIONS]


def adapted_quality(keys):
    """The quality JSON of one adapted generator's class-prompt set on its target's fold."""
    where = {"dataset": keys["target"], "fold": keys["fold"], "adjective": "none"}
    if keys["adaptation"] == "full":
        return paths.QUALITY_FULL.format(**where)
    return paths.QUALITY.format(rank=adaptation_rank(keys["adaptation"]), **where)


def cross_domain_quality(wildcards):
    return [adapted_quality(keys) for keys in cross_domain_sets()]


def cross_domain_params(wildcards):
    """params.json of each trained adaptation (the table's parameter counts), in set order."""
    return [
        paths.FULL_PARAMS.format(dataset=k["target"], fold=k["fold"])
        if k["adaptation"] == "full"
        else paths.LORA_PARAMS.format(dataset=k["target"], fold=k["fold"], rank=adaptation_rank(k["adaptation"]))
        for k in cross_domain_sets()
        if k["adaptation"] != "none"
    ]
