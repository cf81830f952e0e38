# Data stage: fetch -> ingest -> curate -> split.


rule fetch_dataset:
    input:
        archive=path_archive,
    output:
        root=directory(paths.RAW),
    params:
        dataset="{dataset}",
        entry=dataset_entry,
        content=content_of("path_archive"),
        archives=SETTINGS["archives"],
    resources:
        **CPU_RESOURCES,
    log:
        log_file("fetch_dataset", "{dataset}"),
    conda:
        "../../envs/meddap.yaml"
    script:
        "../scripts/fetch_dataset.py"


rule fingerprint_source:
    input:
        raw=raw_dir,
    output:
        source=paths.SOURCE,
    params:
        dataset="{dataset}",
        content=content_of("path_dir"),
    resources:
        **CPU_RESOURCES,
    log:
        log_file("fingerprint_source", "{dataset}"),
    conda:
        "../../envs/meddap.yaml"
    script:
        "../scripts/fingerprint_source.py"


rule fingerprint_model:
    input:
        folder=lambda wc: ancient(model_folder(wc)),  # by content: the param below reruns it
    output:
        fingerprint=paths.MODEL_FINGERPRINT,
    params:
        part="{part}",
        content=model_content,
    wildcard_constraints:
        part=f"base|controlnet-({CONDITION_WILDCARD})",
    resources:
        **CPU_RESOURCES,
    log:
        log_file("fingerprint_model", "{part}"),
    conda:
        "../../envs/meddap.yaml"
    script:
        "../scripts/fingerprint_model.py"


rule ingest:
    input:
        paths.SOURCE,
        raw=raw_dir,
    output:
        manifest=paths.MANIFEST,
        masks=directory(paths.MASKS),
        findings=paths.MASK_FINDINGS,
    params:
        dataset="{dataset}",
        layout=lambda wc: dataset_entry(wc)["layout"],
        mask_check=SETTINGS["mask_check"],
    resources:
        **CPU_RESOURCES,
    log:
        log_file("ingest", "{dataset}"),
    conda:
        "../../envs/meddap.yaml"
    script:
        "../scripts/ingest.py"


rule find_duplicates:
    input:
        dataset_files,
        paths.MASKS,
        manifest=paths.MANIFEST,
    output:
        duplicates=paths.DUPLICATES,
    params:
        similarity=SETTINGS["similarity"],
    threads: CPU_THREADS
    resources:
        **CPU_RESOURCES,
    log:
        log_file("find_duplicates", "{dataset}"),
    conda:
        "../../envs/meddap.yaml"
    script:
        "../scripts/find_duplicates.py"


rule curate:
    input:
        manifest=paths.MANIFEST,
        duplicates=paths.DUPLICATES,
    output:
        curated=paths.CURATED,
    params:
        curation=SETTINGS["curation"],
    resources:
        **CPU_RESOURCES,
    log:
        log_file("curate", "{dataset}"),
    conda:
        "../../envs/meddap.yaml"
    script:
        "../scripts/curate.py"


rule split_folds:
    input:
        curated=paths.CURATED,
        duplicates=paths.DUPLICATES,
        release=release_folder,
    output:
        splits=paths.SPLITS,
    params:
        folds=SETTINGS["folds"],
        layout=lambda wc: dataset_entry(wc)["layout"],
    resources:
        **CPU_RESOURCES,
    log:
        log_file("split_folds", "{dataset}"),
    conda:
        "../../envs/meddap.yaml"
    script:
        "../scripts/split_folds.py"
