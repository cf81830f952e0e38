# Multi-task stage (seed 004): a segmenter with a classification head per fold, backbone and
# mode (single-task seg or cls, their combination, multi-task at a loss weight λ; each with or
# without deterministic oversampling), its test predictions, their prediction refining (PR),
# metrics.json, and the tables.

from meddap.multitask.modes import COMBINED_PATTERN, REFINABLE_PATTERN, TRAINED_PATTERN, parse_mode


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


localrules:
    combine_single_task,
    refine_predictions,
    multitask_metrics,
    multitask_table,
    multitask_cell,


rule train_multitask:
    input:
        dataset_files,
        paths.MASKS,
        manifest=paths.CURATED,
        splits=fold_splits,
    output:
        weights=paths.MULTITASK_WEIGHTS,
        predictions=paths.MULTITASK_PREDICTIONS,
        fit_record=paths.MULTITASK_FIT,
    params:
        fold=lambda wc: int(wc.fold),
        backbone="{backbone}",
        mode="{mode}",
        multitask=SETTINGS["multitask"],
        seed=config["seed"],
    wildcard_constraints:
        mode=TRAINED_PATTERN,
    threads: 1
    resources:
        gpu=1,
        mem_mb=MT["resources"]["mem_mb"],
        runtime=MT["resources"]["runtime"],
    log:
        log_file("train_multitask", "{dataset}/fold{fold}/{backbone}/{mode}"),
    conda:
        "../../envs/meddap.yaml"
    script:
        "../scripts/train_multitask.py"


rule combine_single_task:
    input:
        segmentation=combined_part(0),
        classification=combined_part(1),
    output:
        predictions=paths.MULTITASK_PREDICTIONS,
    wildcard_constraints:
        mode=COMBINED_PATTERN,
    resources:
        **CPU_RESOURCES,
    log:
        log_file("combine_single_task", "{dataset}/fold{fold}/{backbone}/{mode}"),
    conda:
        "../../envs/meddap.yaml"
    script:
        "../scripts/combine_single_task.py"


rule refine_predictions:
    input:
        predictions=paths.MULTITASK_PREDICTIONS,
    output:
        refined=paths.MULTITASK_REFINED,
    params:
        mode="{mode}",
    wildcard_constraints:
        mode=REFINABLE_PATTERN,
    resources:
        **CPU_RESOURCES,
    log:
        log_file("refine_predictions", "{dataset}/fold{fold}/{backbone}/{mode}"),
    conda:
        "../../envs/meddap.yaml"
    script:
        "../scripts/refine_predictions.py"


rule multitask_metrics:
    input:
        dataset_files,
        paths.MASKS,
        manifest=paths.CURATED,
        splits=fold_splits,
        predictions=paths.MULTITASK_PREDICTIONS,
        refined=refined_predictions,
        fits=multitask_fits,
    output:
        metrics=paths.MULTITASK_METRICS,
    params:
        fold=lambda wc: int(wc.fold),
        backbone="{backbone}",
        mode="{mode}",
        image_size=MT["image_size"],
    resources:
        **CPU_RESOURCES,
    log:
        log_file("multitask_metrics", "{dataset}/fold{fold}/{backbone}/{mode}"),
    conda:
        "../../envs/meddap.yaml"
    script:
        "../scripts/multitask_metrics.py"


rule multitask_table:
    input:
        metrics=all_multitask_metrics,
    output:
        **table_outputs("multitask_{table}", caption="multitask"),
    params:
        table="{table}",
        dataset=DATASET,
        image_size=MT["image_size"],
    wildcard_constraints:
        table="table5|per_class",
    resources:
        **CPU_RESOURCES,
    log:
        log_file("multitask_table", "{table}"),
    conda:
        "../../envs/meddap.yaml"
    script:
        "../scripts/multitask_table.py"


rule multitask_cell:
    input:
        metrics=multitask_cell_metrics,
    output:
        cell=paths.MULTITASK_CELL,
    params:
        backbone="{backbone}",
        mode="{mode}",
        pr="{pr}",
        image_size=MT["image_size"],
    wildcard_constraints:
        backbone=CELL_NAME,
        mode=CELL_NAME,
        pr=CELL_NAME,
    resources:
        **CPU_RESOURCES,
    log:
        log_file("multitask_cell", "{backbone}/{mode}/pr-{pr}"),
    conda:
        "../../envs/meddap.yaml"
    script:
        "../scripts/multitask_cell.py"
