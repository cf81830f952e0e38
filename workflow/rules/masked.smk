# Mask-conditioned synthesis (seeds 001, 002): per fold the train lesions' prompt attributes and
# a fine-tuned ControlNet per condition; per (fold, setting) one nested pool of image-mask pairs
# and its quality with mask fidelity. Segmenters train on its prefixes (seg.smk).

from meddap.diffusion.compat import check_models
from meddap.trainsets.pairs import CONDITION_WILDCARD, SETTING_WILDCARD, TEXT, check_setting


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


def pretrained_controlnet_files(wildcards):
    """The fingerprint of a local pretrained ControlNet folder (its recorded input)."""
    return model_fingerprint(pretrained_controlnet(wildcards), f"controlnet-{wildcards.condition}")


# every resolution and each pretrained ControlNet the plan samples with, against the base model
check_models(config, BASE_MODEL, {c: controlnet_location(c) for c in MASKED_CONDITIONS})


rule lesion_attributes:
    input:
        dataset_files,
        paths.MASKS,
        manifest=paths.CURATED,
        splits=fold_splits,
    output:
        table=paths.ATTRIBUTES,
    params:
        fold=lambda wc: int(wc.fold),
    resources:
        **CPU_RESOURCES,
    log:
        log_file("lesion_attributes", "{dataset}/fold{fold}"),
    conda:
        "../../envs/meddap.yaml"
    script:
        "../scripts/lesion_attributes.py"


rule train_controlnet:
    input:
        base_model_files,
        pretrained_controlnet_files,
        dataset_files,
        paths.MASKS,
        manifest=paths.CURATED,
        splits=fold_splits,
        attributes=paths.ATTRIBUTES,
        edge_model=edge_model,  # [] unless an edge model detects the edge condition's edges
    output:
        model=directory(paths.CONTROLNET_MODEL),
        train_log=paths.CONTROLNET_LOG,
    params:
        base_model=BASE_MODEL,
        fold=lambda wc: int(wc.fold),
        condition="{condition}",
        pretrained=pretrained_controlnet,
        controlnet=SETTINGS["controlnet"],
        seed=config["seed"],
    wildcard_constraints:
        condition=CONDITION_WILDCARD,
    threads: 2
    resources:
        gpu=1,
        mem_mb=MASKED["resources"]["mem_mb"],
        runtime=MASKED["resources"]["runtime"],
    log:
        log_file("train_controlnet", "{dataset}/fold{fold}/{condition}"),
    conda:
        "../../envs/meddap.yaml"
    script:
        "../scripts/train_controlnet.py"


rule synthesize_masked:
    input:
        base_model_files,
        dataset_files,
        paths.MASKS,
        manifest=paths.CURATED,
        splits=fold_splits,
        attributes=paths.ATTRIBUTES,
        controlnet=setting_controlnet,  # [] for text: it arrives as an empty list
        edge_model=edge_model,
    output:
        images=directory(paths.MASKED_IMAGES),
        masks=directory(paths.MASKED_MASKS),
        conditions=directory(paths.MASKED_CONDITIONS),
        synth_manifest=paths.MASKED_MANIFEST,
    params:
        base_model=BASE_MODEL,
        fold=lambda wc: int(wc.fold),
        setting="{setting}",
        masked_synthesis=SETTINGS["masked_synthesis"],
        seed=config["seed"],
    wildcard_constraints:
        setting=SETTING_WILDCARD,
    threads: 2
    resources:
        gpu=1,
        mem_mb=MASKED["resources"]["mem_mb"],
        runtime=MASKED["resources"]["runtime"],
    log:
        log_file("synthesize_masked", "{dataset}/fold{fold}/{setting}"),
    conda:
        "../../envs/meddap.yaml"
    script:
        "../scripts/synthesize_masked.py"


rule masked_quality:
    input:
        dataset_files,
        paths.MASKED_IMAGES,
        paths.MASKED_MASKS,
        manifest=paths.CURATED,
        splits=fold_splits,
        synth_manifest=paths.MASKED_MANIFEST,
        segmenter=paths.fill(paths.SEG_WEIGHTS, model=MASKED["fidelity_model"], trainset="real"),
        real_model=paths.fill(paths.CLS_WEIGHTS, model=QUALITY["feature_model"], trainset="real"),
    output:
        record=paths.MASKED_QUALITY,
    params:
        fold=lambda wc: int(wc.fold),
        fidelity_model=MASKED["fidelity_model"],
        segmentation=SETTINGS["segmentation"],
        quality=SETTINGS["quality"],
        seed=config["seed"],
    wildcard_constraints:
        setting=SETTING_WILDCARD,
    threads: 1
    resources:
        **CPU_RESOURCES,
    log:
        log_file("masked_quality", "{dataset}/fold{fold}/{setting}"),
    conda:
        "../../envs/meddap.yaml"
    script:
        "../scripts/masked_quality.py"


rule clinical_figure:
    input:
        paths.fill(paths.MASKED_IMAGES, setting="mask-clinical"),
        paths.fill(paths.MASKED_MASKS, setting="mask-clinical"),
        synth_manifest=paths.fill(paths.MASKED_MANIFEST, setting="mask-clinical"),
    output:
        figure=report(paths.CLINICAL_FIGURE, caption="../report/clinical_figure.rst", category="Segmentation"),
    params:
        per_cell=2,
    resources:
        **CPU_RESOURCES,
    log:
        log_file("clinical_figure", "{dataset}/fold{fold}"),
    conda:
        "../../envs/meddap.yaml"
    script:
        "../scripts/clinical_figure.py"
