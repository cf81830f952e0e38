# Report stage: Tables 1-3, Fig. 1a (real-only classifiers on synthetic sets), Fig. 2 (Grad-CAM),
# sample grids, single Table-1 and segmentation-table cells, the provenance ledger, the run
# summary (results/default_run.md).
# Outputs marked report() go into `snakemake --report`.


rule table1:
    input:
        metrics=lambda wc: plan.cls_metrics(config, ranks_of(DATASET)),
        quality=lambda wc: plan.quality_files(config, SYNTH["adjectives"], ranks_of(DATASET)),
    output:
        **table_outputs("table1"),
    params:
        dataset=DATASET,
        quality_sets=lambda wc: plan.quality_sets(config, SYNTH["adjectives"], ranks_of(DATASET)),
    resources:
        **CPU_RESOURCES,
    log:
        log_file("table1"),
    conda:
        "../../envs/meddap.yaml"
    script:
        "../scripts/table1.py"


rule table2:
    input:
        metrics=lambda wc: plan.cls_metrics(config, ranks_of(DATASET)),
    output:
        **table_outputs("table2"),
    params:
        dataset=DATASET,
    resources:
        **CPU_RESOURCES,
    log:
        log_file("table2"),
    conda:
        "../../envs/meddap.yaml"
    script:
        "../scripts/table2.py"


rule table3:
    input:
        metrics=lambda wc: plan.external_metrics(config, ranks_of(DATASET)),
    output:
        **table_outputs("table3"),
    params:
        dataset=DATASET,
    resources:
        **CPU_RESOURCES,
    log:
        log_file("table3"),
    conda:
        "../../envs/meddap.yaml"
    script:
        "../scripts/table3.py"


rule table1_cell:
    input:
        metrics=lambda wc: plan.cls_cell_metrics(config, wc, lambda fold: fold_rank(DATASET, fold)),
        quality=lambda wc: plan.quality_files(config, [wc.adjective], ranks_of(DATASET, chosen_only=True)),
    output:
        cell=paths.CELL,
    params:
        table="table1",
        model="{model}",
        adjective="{adjective}",
        ratio=lambda wc: int(wc.ratio),
        dataset=DATASET,
        quality_sets=lambda wc: plan.quality_sets(config, [wc.adjective], ranks_of(DATASET, chosen_only=True)),
    wildcard_constraints:
        model=CELL_NAME,
        adjective=CELL_NAME,
        ratio=CELL_NAME,
    resources:
        **CPU_RESOURCES,
    log:
        log_file("table1_cell", "{model}/{adjective}/{ratio}"),
    conda:
        "../../envs/meddap.yaml"
    script:
        "../scripts/table1_cell.py"


rule seg_cell:
    input:
        metrics=lambda wc: plan.seg_cell_metrics(config, wc),
    output:
        cell=paths.SEG_CELL,
    params:
        model="{model}",
        trainset="{trainset}",
        evaluated_on="{evaluated_on}",
        dataset=DATASET,
        image_size=SEG["image_size"],
    wildcard_constraints:
        model=CELL_NAME,
        trainset=CELL_NAME,
        evaluated_on=CELL_NAME,
    resources:
        **CPU_RESOURCES,
    log:
        log_file("seg_cell", "{model}/{trainset}/{evaluated_on}"),
    conda:
        "../../envs/meddap.yaml"
    script:
        "../scripts/seg_cell.py"


rule evaluate_on_synthetic:
    input:
        real_model=paths.fill(paths.CLS_WEIGHTS, trainset="real"),
        synth_manifest=paths.SYNTH_MANIFEST,
    output:
        result=paths.ON_SYNTHETIC,
    params:
        model="{model}",
        classifier=SETTINGS["classifier"],
    resources:
        **CPU_RESOURCES,
    log:
        log_file("evaluate_on_synthetic", "{dataset}/fold{fold}/{model}/r{rank}-{adjective}"),
    conda:
        "../../envs/meddap.yaml"
    script:
        "../scripts/evaluate_on_synthetic.py"


rule figure_1a:
    input:
        results=lambda wc: plan.synthetic_evaluations(config, wc.dataset, ranks_of(wc.dataset)),
    output:
        figure=report(paths.FIG1A, caption="../report/fig1a.rst", category="Figures"),
    resources:
        **CPU_RESOURCES,
    log:
        log_file("figure_1a", "{dataset}"),
    conda:
        "../../envs/meddap.yaml"
    script:
        "../scripts/figure_1a.py"


rule figure_2:
    input:
        dataset_files,
        manifest=paths.CURATED,
        splits=fold_splits,
        real_model=paths.fill(paths.CLS_WEIGHTS, trainset="real"),
        augmented_models=lambda wc: plan.augmented_models(config, wc, fold_rank(wc.dataset, wc.fold)),
        table2=paths.TABLE.format(name="table2", ext="parquet"),
    output:
        figure=report(paths.FIG2, caption="../report/fig2.rst", category="Figures"),
    params:
        model="{model}",
        fold=lambda wc: int(wc.fold),
        augmented_trainsets=lambda wc: plan.augmented_trainsets(config, fold_rank(wc.dataset, wc.fold)),
        classifier=SETTINGS["classifier"],
        n_images=4,
    resources:
        **CPU_RESOURCES,
    log:
        log_file("figure_2", "{dataset}/{model}/fold{fold}"),
    conda:
        "../../envs/meddap.yaml"
    script:
        "../scripts/figure_2.py"


rule sample_figure:
    input:
        dataset_files,
        manifest=paths.CURATED,
        splits=fold_splits,
        synthetic=lambda wc: plan.fold_synthetic_sets(config, wc, ranks_of(wc.dataset)(wc.fold)),
    output:
        figure=report(paths.SAMPLES, caption="../report/samples.rst", category="Synthetic samples"),
    params:
        fold=lambda wc: int(wc.fold),
        per_class=3,
    resources:
        **CPU_RESOURCES,
    log:
        log_file("sample_figure", "{dataset}/fold{fold}"),
    conda:
        "../../envs/meddap.yaml"
    script:
        "../scripts/sample_figure.py"


rule seg_figure:
    input:
        dataset_files,
        paths.MASKS,
        manifest=paths.CURATED,
        splits=fold_splits,
        weights=lambda wc: plan.figure_segmenters(config, wc),
    output:
        figure=report(paths.SEG_FIGURE, caption="../report/seg_figure.rst", category="Segmentation"),
    params:
        models=SEG["models"],
        trainset=SEG_FIGURE_TRAINSET,
        fold=lambda wc: int(wc.fold),
        per_class=3,
        segmentation=SETTINGS["segmentation"],
    resources:
        **CPU_RESOURCES,
    log:
        log_file("seg_figure", "{dataset}/fold{fold}"),
    conda:
        "../../envs/meddap.yaml"
    script:
        "../scripts/seg_figure.py"


rule ledger:
    input:
        plan.stage_targets(config),
    output:
        parquet=paths.LEDGER.format(ext="parquet"),
        csv=report(paths.LEDGER.format(ext="csv"), caption="../report/ledger.rst", category="Provenance"),
    resources:
        **CPU_RESOURCES,
    log:
        log_file("ledger"),
    conda:
        "../../envs/meddap.yaml"
    script:
        "../scripts/ledger.py"


rule run_summary:
    input:
        tables=plan.summary_tables(config),
        fidelity=lambda wc: plan.synthetic_evaluations(config, DATASET, ranks_of(DATASET)),
        ledger=paths.LEDGER.format(ext="parquet"),
    output:
        summary=report(paths.RUN_SUMMARY, caption="../report/run_summary.rst", category="Summary"),
    params:
        dataset=DATASET,
    resources:
        **CPU_RESOURCES,
    log:
        log_file("run_summary"),
    conda:
        "../../envs/meddap.yaml"
    script:
        "../scripts/run_summary.py"


rule curation_report:
    input:
        manifest=paths.MANIFEST,
        duplicates=paths.DUPLICATES,
        curated=paths.CURATED,
        findings=paths.MASK_FINDINGS,
    output:
        summary=paths.CURATION_REPORT,
        figure=report(paths.CURATION_FIGURE, caption="../report/curation.rst", category="Curation"),
    params:
        similarity=SETTINGS["similarity"],
    resources:
        **CPU_RESOURCES,
    log:
        log_file("curation_report", "{dataset}"),
    conda:
        "../../envs/meddap.yaml"
    script:
        "../scripts/curation_report.py"


rule cross_domain_table:
    input:
        quality=lambda wc: plan.cross_domain_quality(config),
        params_json=lambda wc: plan.cross_domain_params(config),
    output:
        **table_outputs("cross_domain_table"),
    params:
        sets=plan.cross_domain_sets(config),
        lora_targets=LORA["targets"],
    resources:
        **CPU_RESOURCES,
    log:
        log_file("cross_domain_table"),
    conda:
        "../../envs/meddap.yaml"
    script:
        "../scripts/cross_domain_table.py"
