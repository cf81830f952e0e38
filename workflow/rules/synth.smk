# Synthesis stage: per (fold, rank, adjective) one nested synthetic set, its quality, rank choice.


rule synthesize:
    input:
        base_model_files,
        manifest=paths.CURATED,
        splits=fold_splits,
        lora=lambda wc: plan.lora_weights(wc),
    output:
        images=directory(paths.SYNTH_IMAGES),
        synth_manifest=paths.SYNTH_MANIFEST,
    params:
        base_model=BASE_MODEL,
        fold=lambda wc: int(wc.fold),
        rank=lambda wc: int(wc.rank),
        adjective="{adjective}",
        synthesis=SETTINGS["synthesis"],
        seed=config["seed"],
    threads: SYNTH["resources"]["threads"]
    resources:
        gpu=1,
        mem_mb=SYNTH["resources"]["mem_mb"],
        runtime=SYNTH["resources"]["runtime"],
    log:
        log_file("synthesize", "{dataset}/fold{fold}/r{rank}/{adjective}"),
    conda:
        "../../envs/meddap.yaml"
    script:
        "../scripts/synthesize.py"


rule quality:
    input:
        dataset_files,
        manifest=paths.CURATED,
        splits=fold_splits,
        synth_manifest=paths.SYNTH_MANIFEST,
        real_model=paths.fill(paths.CLS_WEIGHTS, model=QUALITY["feature_model"], trainset="real"),
    output:
        record=paths.QUALITY,
    params:
        fold=lambda wc: int(wc.fold),
        quality=SETTINGS["quality"],
        seed=config["seed"],
    threads: CPU_THREADS
    resources:
        **CPU_RESOURCES,
    log:
        log_file("quality", "{dataset}/fold{fold}/r{rank}/{adjective}"),
    conda:
        "../../envs/meddap.yaml"
    script:
        "../scripts/quality.py"


checkpoint select_rank:
    input:
        quality=lambda wc: plan.rank_selection_inputs(config, wc),
    output:
        selection=paths.RANK_SELECTION,
    params:
        ranks=LORA_RANKS,
        choice=SYNTH["rank"],
    resources:
        **CPU_RESOURCES,
    log:
        log_file("select_rank", "{dataset}/fold{fold}"),
    conda:
        "../../envs/meddap.yaml"
    script:
        "../scripts/select_rank.py"


use rule synthesize as synthesize_full with:
    input:  # `with: input:` replaces every input
        base_model_files,
        manifest=paths.CURATED,
        splits=fold_splits,
        lora=paths.FULL_UNET,
    output:
        images=directory(paths.SYNTH_FULL_IMAGES),
        synth_manifest=paths.SYNTH_FULL_MANIFEST,
    params:
        rank="full",
    log:
        log_file("synthesize_full", "{dataset}/fold{fold}/{adjective}"),


use rule quality as quality_full with:
    input:
        dataset_files,
        manifest=paths.CURATED,
        splits=fold_splits,
        synth_manifest=paths.SYNTH_FULL_MANIFEST,
        real_model=paths.fill(paths.CLS_WEIGHTS, model=QUALITY["feature_model"], trainset="real"),
    output:
        record=paths.QUALITY_FULL,
    log:
        log_file("quality_full", "{dataset}/fold{fold}/{adjective}"),
