# Synthesis stage: per (fold, rank, adjective) one nested synthetic set, its quality, rank choice.


rule synthesize:
    input:
        base_model_files,
        manifest="results/data/{dataset}/curated.parquet",
        splits="results/data/{dataset}/splits.parquet",
        lora="results/lora/{dataset}/fold{fold}/r{rank}/pytorch_lora_weights.safetensors",
    output:
        images=directory("results/synth/{dataset}/fold{fold}/r{rank}/{adjective}/images"),
        synth_manifest="results/synth/{dataset}/fold{fold}/r{rank}/{adjective}/manifest.parquet",
    params:
        base_model=BASE_MODEL,
        fold=lambda wc: int(wc.fold),
        rank=lambda wc: int(wc.rank),
        adjective="{adjective}",
        pool=SYNTH["pool"],
        sampling=SYNTH["sampling"],
        seed=config["seed"],
    threads: 2
    resources:
        gpu=1,
        mem_mb=SYNTH["resources"]["mem_mb"],
        runtime=SYNTH["resources"]["runtime"],
    log:
        "results/logs/synthesize/{dataset}/fold{fold}/r{rank}/{adjective}.log",
    conda:
        "../../envs/meddap.yaml"
    script:
        "../scripts/synthesize.py"


rule quality:
    input:
        manifest="results/data/{dataset}/curated.parquet",
        splits="results/data/{dataset}/splits.parquet",
        synth_manifest="results/synth/{dataset}/fold{fold}/r{rank}/{adjective}/manifest.parquet",
        classifier=f"results/cls/{{dataset}}/fold{{fold}}/{QUALITY['feature_model']}/real/model.safetensors",
    output:
        quality="results/quality/{dataset}/fold{fold}/r{rank}/{adjective}.json",
    params:
        fold=lambda wc: int(wc.fold),
        settings=QUALITY,
        seed=config["seed"],
    threads: 1
    resources:
        **CPU_RESOURCES,
    log:
        "results/logs/quality/{dataset}/fold{fold}/r{rank}/{adjective}.log",
    conda:
        "../../envs/meddap.yaml"
    script:
        "../scripts/quality.py"


checkpoint select_rank:
    input:
        quality=rank_selection_inputs,
    output:
        selection="results/quality/{dataset}/fold{fold}/rank_selection.json",
    params:
        ranks=LORA["ranks"],
        choice=SYNTH["rank"],
    resources:
        **CPU_RESOURCES,
    log:
        "results/logs/select_rank/{dataset}/fold{fold}.log",
    conda:
        "../../envs/meddap.yaml"
    script:
        "../scripts/select_rank.py"

