# Segmentation stage: MONAI segmenters per fold, model and training set (real or aug-<name>),
# scored in-domain and zero-shot on the external datasets; the segmentation table.


localrules:
    seg_table,


rule train_segmenter:
    input:
        dataset_files,
        paths.MASKS,
        seg_external_files,
        manifest=seg_manifest,
        splits=paths.SPLITS,
        external=expand(paths.MANIFEST, dataset=SEG["external"]),
    output:
        weights=paths.SEG_WEIGHTS,
        scores=paths.SEG_SCORES,
        metrics=paths.SEG_METRICS,
    params:
        fold=lambda wc: int(wc.fold),
        model="{model}",
        trainset="{trainset}",
        segmentation=SETTINGS["segmentation"],
        seed=config["seed"],
    wildcard_constraints:
        trainset=r"real|aug-[a-z]+",
    threads: 1  # small networks: one thread each, jobs side by side
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


rule seg_table:
    input:
        metrics=all_seg_metrics,
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
