# Data stage: fetch -> ingest -> curate -> split.


rule fetch_dataset:
    output:
        root=directory("results/raw/{dataset}"),
    params:
        dataset="{dataset}",
        entry=dataset_entry,
    resources:
        **CPU_RESOURCES,
    log:
        "results/logs/fetch_dataset/{dataset}.log",
    conda:
        "../../envs/meddap.yaml"
    script:
        "../scripts/fetch_dataset.py"


rule ingest:
    input:
        raw=raw_dir,
    output:
        manifest="results/data/{dataset}/manifest.parquet",
        masks=directory("results/data/{dataset}/masks"),
    params:
        dataset="{dataset}",
        layout=lambda wc: dataset_entry(wc)["layout"],
    resources:
        **CPU_RESOURCES,
    log:
        "results/logs/ingest/{dataset}.log",
    conda:
        "../../envs/meddap.yaml"
    script:
        "../scripts/ingest.py"


rule find_duplicates:
    input:
        manifest="results/data/{dataset}/manifest.parquet",
    output:
        duplicates="results/data/{dataset}/duplicates.parquet",
    params:
        curation=SETTINGS["curation"],
    threads: 2
    resources:
        **CPU_RESOURCES,
    log:
        "results/logs/find_duplicates/{dataset}.log",
    conda:
        "../../envs/meddap.yaml"
    script:
        "../scripts/find_duplicates.py"


rule curate:
    input:
        manifest="results/data/{dataset}/manifest.parquet",
        duplicates="results/data/{dataset}/duplicates.parquet",
    output:
        curated="results/data/{dataset}/curated.parquet",
    params:
        curation=SETTINGS["curation"],
    resources:
        **CPU_RESOURCES,
    log:
        "results/logs/curate/{dataset}.log",
    conda:
        "../../envs/meddap.yaml"
    script:
        "../scripts/curate.py"


rule split_folds:
    input:
        curated="results/data/{dataset}/curated.parquet",
        duplicates="results/data/{dataset}/duplicates.parquet",
    output:
        splits="results/data/{dataset}/splits.parquet",
    params:
        folds=SETTINGS["folds"],
    resources:
        **CPU_RESOURCES,
    log:
        "results/logs/split_folds/{dataset}.log",
    conda:
        "../../envs/meddap.yaml"
    script:
        "../scripts/split_folds.py"
