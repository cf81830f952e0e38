# Data stage: fetch -> ingest -> curate -> split.

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


def model_folder(wildcards):
    """The folder a model fingerprint lists: the base model or a condition's pretrained ControlNet."""
    part = wildcards.part
    return BASE_MODEL if part == "base" else controlnet_location(part.removeprefix("controlnet-"))


def model_content(wildcards):
    """The content digest of that folder when the DAG is built: its rerun trigger (not mtimes)."""
    return model_digest(model_folder(wildcards), wildcards.part)


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
    threads: 2
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
