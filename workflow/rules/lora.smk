# USLoRA stage: (tiny) base model -> per-fold latent/text cache -> per-fold, per-rank LoRA.


rule build_tiny_sd:
    output:
        model=directory("results/models/tiny-sd"),
    params:
        diffusion=SETTINGS["diffusion"],
    resources:
        **CPU_RESOURCES,
    log:
        "results/logs/build_tiny_sd.log",
    conda:
        "../../envs/meddap.yaml"
    script:
        "../scripts/build_tiny_sd.py"


rule encode_fold:
    input:
        base_model_files,
        manifest="results/data/{dataset}/curated.parquet",
        splits="results/data/{dataset}/splits.parquet",
    output:
        cache="results/lora/{dataset}/fold{fold}/cache.safetensors",
    params:
        base_model=BASE_MODEL,
        fold=lambda wc: int(wc.fold),
        lora=SETTINGS["lora"],
    resources:
        gpu=1,
        mem_mb=LORA["resources"]["mem_mb"],
        runtime=LORA["resources"]["runtime"],
    log:
        "results/logs/encode_fold/{dataset}/fold{fold}.log",
    conda:
        "../../envs/meddap.yaml"
    script:
        "../scripts/encode_fold.py"


rule train_lora:
    input:
        base_model_files,
        cache="results/lora/{dataset}/fold{fold}/cache.safetensors",
        splits="results/data/{dataset}/splits.parquet",
    output:
        weights="results/lora/{dataset}/fold{fold}/r{rank}/pytorch_lora_weights.safetensors",
        train_log="results/lora/{dataset}/fold{fold}/r{rank}/train_log.csv",
        params_json="results/lora/{dataset}/fold{fold}/r{rank}/params.json",
    params:
        base_model=BASE_MODEL,
        fold=lambda wc: int(wc.fold),
        rank=lambda wc: int(wc.rank),
        lora=SETTINGS["lora"],
        seed=config["seed"],
    threads: 2
    resources:
        gpu=1,
        mem_mb=LORA["resources"]["mem_mb"],
        runtime=LORA["resources"]["runtime"],
    log:
        "results/logs/train_lora/{dataset}/fold{fold}/r{rank}.log",
    conda:
        "../../envs/meddap.yaml"
    script:
        "../scripts/train_lora.py"
