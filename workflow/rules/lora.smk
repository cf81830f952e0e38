# USLoRA stage: (tiny) base model -> per-fold latent/text cache -> per-fold, per-rank LoRA.


rule build_tiny_sd:
    output:
        model=directory(paths.TINY_SD),
    params:
        diffusion=SETTINGS["diffusion"],
    resources:
        **CPU_RESOURCES,
    log:
        log_file("build_tiny_sd"),
    conda:
        "../../envs/meddap.yaml"
    script:
        "../scripts/build_tiny_sd.py"


rule encode_fold:
    input:
        base_model_files,
        dataset_files,
        manifest=paths.CURATED,
        splits=fold_splits,
    output:
        cache=paths.LORA_CACHE,
    params:
        base_model=BASE_MODEL,
        fold=lambda wc: int(wc.fold),
        encoding=SETTINGS["encoding"],
    resources:
        gpu=1,
        mem_mb=LORA["resources"]["mem_mb"],
        runtime=LORA["resources"]["runtime"],
    log:
        log_file("encode_fold", "{dataset}/fold{fold}"),
    conda:
        "../../envs/meddap.yaml"
    script:
        "../scripts/encode_fold.py"


rule train_lora:
    wildcard_constraints:
        rank=r"[1-9]\d*",  # rank 0 is the base model without LoRA
    input:
        base_model_files,
        cache=paths.LORA_CACHE,
        splits=fold_splits,
    output:
        weights=paths.LORA_WEIGHTS,
        train_log=paths.LORA_LOG,
        params_json=paths.LORA_PARAMS,
    params:
        base_model=BASE_MODEL,
        fold=lambda wc: int(wc.fold),
        rank=lambda wc: int(wc.rank),
        lora=lambda wc: plan.lora_settings(config, SETTINGS["lora"], wc.dataset),
        seed=config["seed"],
    threads: LORA["resources"]["threads"]
    resources:
        gpu=1,
        mem_mb=LORA["resources"]["mem_mb"],
        runtime=LORA["resources"]["runtime"],
    log:
        log_file("train_lora", "{dataset}/fold{fold}/r{rank}"),
    conda:
        "../../envs/meddap.yaml"
    script:
        "../scripts/train_lora.py"


# `lora.released`: the released adapter is every fold's LoRA of the grid's dataset
if LORA["released"]:

    ruleorder: import_lora > train_lora

else:

    ruleorder: train_lora > import_lora


rule import_lora:
    wildcard_constraints:
        dataset=DATASET,  # cross-domain targets still train their own
    input:
        base_model_files,
        released=lambda wc: ancient(LORA["released"]),  # by content: the param below reruns it
    output:
        weights=paths.LORA_WEIGHTS,
    params:
        base_model=BASE_MODEL,
        rank=lambda wc: int(wc.rank),
        sha256=lambda wc: file_sha256(LORA["released"]),
    resources:
        **CPU_RESOURCES,
    log:
        log_file("import_lora", "{dataset}/fold{fold}/r{rank}"),
    conda:
        "../../envs/meddap.yaml"
    script:
        "../scripts/import_lora.py"


use rule train_lora as finetune_unet with:
    output:
        weights=directory(paths.FULL_UNET),
        train_log=paths.FULL_LOG,
        params_json=paths.FULL_PARAMS,
    params:
        rank="full",
        lora=lambda wc: {**plan.lora_settings(config, SETTINGS["lora"], wc.dataset), "learning_rate": CROSS["full_learning_rate"]},
    log:
        log_file("finetune_unet", "{dataset}/fold{fold}"),
