# Downstream stage: classifiers per fold, model and training set (real, or real + a synthetic
# prefix: of a text-to-image set, or of a mask-conditioned pool, `{setting}-1to{k}`).


rule train_classifier:
    input:
        dataset_files,
        synthetic_files,
        expand(paths.SOURCE, dataset=CLS["external"]),
        manifest=paths.CURATED,
        splits=fold_splits,
        synthetic=synthetic_manifest,
        external=expand(paths.MANIFEST, dataset=CLS["external"]),
    output:
        weights=paths.CLS_WEIGHTS,
        predictions=paths.CLS_PREDICTIONS,
        metrics=paths.CLS_METRICS,
    params:
        fold=lambda wc: int(wc.fold),
        model="{model}",
        trainset="{trainset}",
        classifier=SETTINGS["classifier"],
        seed=config["seed"],
    threads: CLS["resources"]["threads"]
    resources:
        gpu=1,
        mem_mb=CLS["resources"]["mem_mb"],
        runtime=CLS["resources"]["runtime"],
    log:
        log_file("train_classifier", "{dataset}/fold{fold}/{model}/{trainset}"),
    conda:
        "../../envs/meddap.yaml"
    script:
        "../scripts/train_classifier.py"
