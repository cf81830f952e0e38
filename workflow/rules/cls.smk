# Downstream stage: classifiers per fold, model and training set (real, or real + a synthetic prefix).


rule train_classifier:
    input:
        manifest="results/data/{dataset}/curated.parquet",
        splits="results/data/{dataset}/splits.parquet",
        synthetic=synthetic_manifest,
        external=expand("results/data/{ext}/manifest.parquet", ext=CLS["external"]),
    output:
        weights="results/cls/{dataset}/fold{fold}/{model}/{trainset}/model.safetensors",
        predictions="results/cls/{dataset}/fold{fold}/{model}/{trainset}/predictions.parquet",
        metrics="results/cls/{dataset}/fold{fold}/{model}/{trainset}/metrics.json",
    params:
        fold=lambda wc: int(wc.fold),
        model="{model}",
        trainset="{trainset}",
        classifier=SETTINGS["classifier"],
        seed=config["seed"],
    threads: 2
    resources:
        gpu=1,
        mem_mb=CLS["resources"]["mem_mb"],
        runtime=CLS["resources"]["runtime"],
    log:
        "results/logs/train_classifier/{dataset}/fold{fold}/{model}/{trainset}.log",
    conda:
        "../../envs/meddap.yaml"
    script:
        "../scripts/train_classifier.py"
