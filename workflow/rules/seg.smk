# Segmentation stage: MONAI segmenters per fold, model and training set (real, aug-<name>,
# {setting}-{r}to{s} or its patch-mixed {setting}-{r}to{s}-mix{λ}p{p}), scored in-domain (in
# training) and zero-shot on each external dataset (its own job), their metrics.json; the
# segmentation, ablation and ratio tables. A mixed set reads its pool and the real train images
# (its pairs' parents), the latter already inputs of every segmenter (dataset_files, manifest).


localrules:
    segmenter_metrics,
    seg_table,
    seg_ablation,
    seg_ratio_table,


rule train_segmenter:
    input:
        dataset_files,
        paths.MASKS,
        synthetic_files,
        manifest=seg_manifest,
        splits=fold_splits,
        synthetic=seg_synthetic,
    output:
        weights=paths.SEG_WEIGHTS,
        scores=paths.SEG_SCORES,
        fit_record=paths.SEG_FIT,
    params:
        fold=lambda wc: int(wc.fold),
        model="{model}",
        trainset="{trainset}",
        segmentation=SETTINGS["segmentation"],
        seed=config["seed"],
    wildcard_constraints:
        trainset=SEG_TRAINSET,
    threads: SEG["resources"]["threads"]
    resources:
        gpu=1,
        mem_mb=SEG["resources"]["mem_mb"],
        runtime=SEG["resources"]["runtime"],
    log:
        log_file("train_segmenter", "{dataset}/fold{fold}/{model}/{trainset}"),
    conda:
        "../../envs/meddap.yaml"
    script:
        "../scripts/train_segmenter.py"


rule score_segmenter:
    input:
        lambda wc: [paths.SOURCE.format(dataset=wc.external), paths.MASKS.format(dataset=wc.external)],
        weights=paths.SEG_WEIGHTS,
        manifest=lambda wc: paths.MANIFEST.format(dataset=wc.external),
    output:
        scores=paths.SEG_EXTERNAL,
    params:
        model="{model}",
        segmentation=SETTINGS["segmentation"],
    wildcard_constraints:
        trainset=SEG_TRAINSET,
    threads: SEG["resources"]["threads"]
    resources:
        gpu=1,
        mem_mb=SEG["resources"]["mem_mb"],
        runtime=SEG["resources"]["runtime"],
    log:
        log_file("score_segmenter", "{dataset}/fold{fold}/{model}/{trainset}/{external}"),
    conda:
        "../../envs/meddap.yaml"
    script:
        "../scripts/score_segmenter.py"


rule segmenter_metrics:
    input:
        fit_record=paths.SEG_FIT,
        scores=paths.SEG_SCORES,
        external=expand(paths.SEG_EXTERNAL, external=SEG["external"], allow_missing=True),
    output:
        metrics=paths.SEG_METRICS,
    wildcard_constraints:
        trainset=SEG_TRAINSET,
    resources:
        **CPU_RESOURCES,
    log:
        log_file("segmenter_metrics", "{dataset}/fold{fold}/{model}/{trainset}"),
    conda:
        "../../envs/meddap.yaml"
    script:
        "../scripts/segmenter_metrics.py"


rule seg_table:
    input:
        metrics=lambda wc: plan.seg_metrics(config, SEG["models"], plan.seg_trainsets(config)),
    output:
        **table_outputs("seg_table"),
    params:
        dataset=DATASET,
        image_size=SEG["image_size"],
    resources:
        **CPU_RESOURCES,
    log:
        log_file("seg_table"),
    conda:
        "../../envs/meddap.yaml"
    script:
        "../scripts/seg_table.py"


rule seg_ablation:
    input:
        metrics=lambda wc: plan.seg_metrics(config, SEG["ablation"], ["real"]),
    output:
        **table_outputs("seg_ablation"),
    params:
        dataset=DATASET,
        image_size=SEG["image_size"],
    resources:
        **CPU_RESOURCES,
    log:
        log_file("seg_ablation"),
    conda:
        "../../envs/meddap.yaml"
    script:
        "../scripts/seg_ablation.py"


rule seg_ratio_table:
    input:
        metrics=lambda wc: plan.seg_metrics(config, SEG["models"], ["real", *plan.pair_trainsets(config)]),
        classifiers=lambda wc: plan.ratio_cls_metrics(config),
    output:
        **table_outputs("seg_ratio_table"),
    params:
        dataset=DATASET,
        image_size=SEG["image_size"],
    resources:
        **CPU_RESOURCES,
    log:
        log_file("seg_ratio_table"),
    conda:
        "../../envs/meddap.yaml"
    script:
        "../scripts/seg_ratio_table.py"
