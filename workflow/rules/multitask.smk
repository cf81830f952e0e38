# Multi-task stage (MTL): a segmenter with a classification head per fold, backbone and
# mode (single-task seg or cls, their combination, multi-task at a loss weight λ; each with or
# without deterministic oversampling), its test predictions, their prediction refining (PR),
# metrics.json, and the tables.


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
    threads: MT["resources"]["threads"]
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
        segmentation=lambda wc: plan.combined_part(wc, 0),
        classification=lambda wc: plan.combined_part(wc, 1),
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
        refined=lambda wc: plan.refined_predictions(wc),
        fits=lambda wc: plan.multitask_fits(wc),
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
        metrics=lambda wc: plan.multitask_metrics(config),
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
        metrics=lambda wc: plan.multitask_cell_metrics(config, wc),
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
