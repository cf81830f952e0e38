# Report stage: Tables 1-3, Fig. 1a (real-only classifiers on synthetic sets), Fig. 2 (Grad-CAM),
# sample grids, single Table-1 cells, the provenance ledger.
# Outputs marked report() go into `snakemake --report`.


rule table1:
    input:
        metrics=all_metrics,
        quality=all_quality,
    output:
        **table_outputs("table1"),
    resources:
        **CPU_RESOURCES,
    log:
        "results/logs/table1.log",
    conda:
        "../../envs/meddap.yaml"
    script:
        "../scripts/table1.py"


rule table2:
    input:
        metrics=all_metrics,
    output:
        **table_outputs("table2"),
    resources:
        **CPU_RESOURCES,
    log:
        "results/logs/table2.log",
    conda:
        "../../envs/meddap.yaml"
    script:
        "../scripts/table2.py"


rule table3:
    input:
        metrics=all_metrics,
    output:
        **table_outputs("table3"),
    resources:
        **CPU_RESOURCES,
    log:
        "results/logs/table3.log",
    conda:
        "../../envs/meddap.yaml"
    script:
        "../scripts/table3.py"


rule table1_cell:
    input:
        metrics=cell_metrics,
        quality=cell_quality,
    output:
        cell="results/cells/table1/{model}/{adjective}/{ratio}.json",
    params:
        table="table1",
        model="{model}",
        adjective="{adjective}",
        ratio=lambda wc: int(wc.ratio),
    resources:
        **CPU_RESOURCES,
    log:
        "results/logs/table1_cell/{model}/{adjective}/{ratio}.log",
    conda:
        "../../envs/meddap.yaml"
    script:
        "../scripts/table1_cell.py"


rule evaluate_on_synthetic:
    input:
        classifier="results/cls/{dataset}/fold{fold}/{model}/real/model.safetensors",
        synth_manifest="results/synth/{dataset}/fold{fold}/r{rank}/{adjective}/manifest.parquet",
    output:
        result="results/cls/{dataset}/fold{fold}/{model}/real/on_synthetic/r{rank}-{adjective}.json",
    params:
        model="{model}",
        image_size=CLS["image_size"],
    resources:
        **CPU_RESOURCES,
    log:
        "results/logs/evaluate_on_synthetic/{dataset}/fold{fold}/{model}/r{rank}-{adjective}.log",
    conda:
        "../../envs/meddap.yaml"
    script:
        "../scripts/evaluate_on_synthetic.py"


rule figure_1a:
    input:
        results=synthetic_evaluations,
    output:
        figure=report(
            "results/figures/fig1a_{dataset}_real_only_on_synthetic.png",
            caption="../report/fig1a.rst",
            category="Figures",
        ),
    resources:
        **CPU_RESOURCES,
    log:
        "results/logs/figure_1a/{dataset}.log",
    conda:
        "../../envs/meddap.yaml"
    script:
        "../scripts/figure_1a.py"


rule figure_2:
    input:
        manifest="results/data/{dataset}/curated.parquet",
        splits="results/data/{dataset}/splits.parquet",
        real_model="results/cls/{dataset}/fold{fold}/{model}/real/model.safetensors",
        augmented_models=augmented_models,
        table2="results/tables/table2.parquet",
    output:
        figure=report(
            "results/figures/fig2_{dataset}_gradcam_{model}_fold{fold}.png",
            caption="../report/fig2.rst",
            category="Figures",
        ),
    params:
        model="{model}",
        fold=lambda wc: int(wc.fold),
        image_size=CLS["image_size"],
        n_images=4,
    resources:
        **CPU_RESOURCES,
    log:
        "results/logs/figure_2/{dataset}/{model}/fold{fold}.log",
    conda:
        "../../envs/meddap.yaml"
    script:
        "../scripts/figure_2.py"


rule sample_figure:
    input:
        manifest="results/data/{dataset}/curated.parquet",
        splits="results/data/{dataset}/splits.parquet",
        synthetic=chosen_synthetic_sets,
    output:
        figure=report(
            "results/figures/samples_{dataset}_fold{fold}.png",
            caption="../report/samples.rst",
            category="Synthetic samples",
        ),
    params:
        fold=lambda wc: int(wc.fold),
        per_class=3,
    resources:
        **CPU_RESOURCES,
    log:
        "results/logs/sample_figure/{dataset}/fold{fold}.log",
    conda:
        "../../envs/meddap.yaml"
    script:
        "../scripts/sample_figure.py"


rule ledger:
    input:
        stage_targets(),
    output:
        parquet="results/provenance.parquet",
        csv=report("results/provenance.csv", caption="../report/ledger.rst", category="Provenance"),
    resources:
        **CPU_RESOURCES,
    log:
        "results/logs/ledger.log",
    conda:
        "../../envs/meddap.yaml"
    script:
        "../scripts/ledger.py"
