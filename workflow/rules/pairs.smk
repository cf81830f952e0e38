# Mask-conditioned synthesis (ClinicalPrior, DiffBoost): per fold the train lesions' prompt attributes and
# a fine-tuned ControlNet per condition; per (fold, setting) one nested pool of image-mask pairs
# and its quality with mask fidelity. Segmenters train on its prefixes (seg.smk).


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
        edge_model=lambda wc: plan.edge_model(config, wc),  # [] unless an edge model detects the edge condition's edges
    output:
        model=directory(paths.CONTROLNET_MODEL),
        train_log=paths.CONTROLNET_LOG,
    params:
        base_model=BASE_MODEL,
        fold=lambda wc: int(wc.fold),
        condition="{condition}",
        pretrained=lambda wc: controlnet_location(wc.condition),
        controlnet=SETTINGS["controlnet"],
        seed=config["seed"],
    wildcard_constraints:
        condition=CONDITION_WILDCARD,
    threads: PAIRS["resources"]["threads"]
    resources:
        gpu=1,
        mem_mb=PAIRS["resources"]["mem_mb"],
        runtime=PAIRS["resources"]["runtime"],
    log:
        log_file("train_controlnet", "{dataset}/fold{fold}/{condition}"),
    conda:
        "../../envs/meddap.yaml"
    script:
        "../scripts/train_controlnet.py"


rule synthesize_pairs:
    input:
        base_model_files,
        dataset_files,
        paths.MASKS,
        manifest=paths.CURATED,
        splits=fold_splits,
        attributes=paths.ATTRIBUTES,
        controlnet=lambda wc: plan.setting_controlnet(wc),  # [] for text: it arrives as an empty list
        edge_model=lambda wc: plan.edge_model(config, wc),
    output:
        images=directory(paths.PAIRS_IMAGES),
        masks=directory(paths.PAIRS_MASKS),
        conditions=directory(paths.PAIRS_CONDITIONS),
        synth_manifest=paths.PAIRS_MANIFEST,
    params:
        base_model=BASE_MODEL,
        fold=lambda wc: int(wc.fold),
        setting="{setting}",
        pairs_synthesis=SETTINGS["pairs_synthesis"],
        seed=config["seed"],
    wildcard_constraints:
        setting=SETTING_WILDCARD,
    threads: PAIRS["resources"]["threads"]
    resources:
        gpu=1,
        mem_mb=PAIRS["resources"]["mem_mb"],
        runtime=PAIRS["resources"]["runtime"],
    log:
        log_file("synthesize_pairs", "{dataset}/fold{fold}/{setting}"),
    conda:
        "../../envs/meddap.yaml"
    script:
        "../scripts/synthesize_pairs.py"


rule pairs_quality:
    input:
        dataset_files,
        paths.PAIRS_IMAGES,
        paths.PAIRS_MASKS,
        manifest=paths.CURATED,
        splits=fold_splits,
        synth_manifest=paths.PAIRS_MANIFEST,
        segmenter=paths.fill(paths.SEG_WEIGHTS, model=PAIRS["fidelity_model"], trainset="real"),
        real_model=paths.fill(paths.CLS_WEIGHTS, model=QUALITY["feature_model"], trainset="real"),
    output:
        record=paths.PAIRS_QUALITY,
    params:
        fold=lambda wc: int(wc.fold),
        fidelity_model=PAIRS["fidelity_model"],
        segmentation=SETTINGS["segmentation"],
        quality=SETTINGS["quality"],
        seed=config["seed"],
    wildcard_constraints:
        setting=SETTING_WILDCARD,
    threads: CPU_THREADS
    resources:
        **CPU_RESOURCES,
    log:
        log_file("pairs_quality", "{dataset}/fold{fold}/{setting}"),
    conda:
        "../../envs/meddap.yaml"
    script:
        "../scripts/pairs_quality.py"


rule clinical_figure:
    input:
        paths.fill(paths.PAIRS_IMAGES, setting="mask-clinical"),
        paths.fill(paths.PAIRS_MASKS, setting="mask-clinical"),
        synth_manifest=paths.fill(paths.PAIRS_MANIFEST, setting="mask-clinical"),
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
