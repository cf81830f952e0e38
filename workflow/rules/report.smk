# Report stage: Tables 1-3, Fig. 1a (real-only classifiers on synthetic sets), Fig. 2 (Grad-CAM),
# sample grids, single Table-1 and segmentation-table cells, the provenance ledger, the run
# summary (results/default_run.md).
# Outputs marked report() go into `snakemake --report`.

def all_metrics(wildcards):
    return plan.cls_metrics(config, ranks_of(DATASET))


def external_metrics(wildcards):
    """Table 3's runs: every classifier, once there are external sets to score them on."""
    if not CLS["external"]:
        raise MeddapError("Table 3 reports external accuracy, but config key 'classifier.external' is [] (the default target leaves Table 3 out then)")
    return all_metrics(wildcards)


def all_quality(wildcards):
    keys = plan.quality_sets(config, SYNTH["adjectives"], ranks_of(DATASET))
    return [paths.QUALITY.format(dataset=DATASET, **k) for k in keys]


def cell_metrics(wildcards):
    """Only what one Table-1 cell needs: its setting's classifier in every fold."""
    grid = {
        "classifier.models": (wildcards.model, CLS["models"]),
        "synthesis.adjectives": (wildcards.adjective, SYNTH["adjectives"]),
        "synthesis.ratios": (wildcards.ratio, SYNTH["ratios"]),
    }
    check_cell(paths.CELL.format(**dict(wildcards.items())), grid)
    name = lambda f: trainsets.TextSet(fold_rank(DATASET, f), wildcards.adjective, int(wildcards.ratio)).name
    return [paths.CLS_METRICS.format(dataset=DATASET, fold=f, model=wildcards.model, trainset=name(f)) for f in FOLDS]


def cell_quality(wildcards):
    keys = plan.quality_sets(config, [wildcards.adjective], ranks_of(DATASET, chosen_only=True))
    return [paths.QUALITY.format(dataset=DATASET, **k) for k in keys]


def synthetic_evaluations(wildcards):
    """Fig. 1a: each fold's real-only classifiers on each synthetic set of the fold's ranks."""
    return plan.synthetic_evaluations(config, wildcards.dataset, ranks_of(wildcards.dataset))


def augmented_trainsets(wildcards):
    """The fold's augmented training sets of its chosen rank (Table 2 has no base-model rows);
    Fig. 2 shows Table 2's best one."""
    return trainsets.TextSet.grid(config, [fold_rank(wildcards.dataset, wildcards.fold)])


def augmented_models(wildcards):
    """The weights of each augmented training set of the fold and model (aligned with the above)."""
    return [
        paths.CLS_WEIGHTS.format(dataset=wildcards.dataset, fold=wildcards.fold, model=wildcards.model, trainset=t)
        for t in augmented_trainsets(wildcards)
    ]


def fold_synthetic_sets(wildcards):
    """The fold's synthetic sets of its ranks (chosen, and 0 with BASE_ROW), one per adjective."""
    ranks = ranks_of(wildcards.dataset)(wildcards.fold)
    return expand(paths.SYNTH_MANIFEST, dataset=wildcards.dataset, fold=wildcards.fold, rank=ranks, adjective=SYNTH["adjectives"])


def seg_cell_metrics(wildcards):
    """Only what one segmentation-table (or ablation-table) cell needs: its row's folds and the
    model's real ones."""
    ablation = SEG["ablation"] if wildcards.trainset == "real" else []  # ablation rows train on real
    grid = {
        "segmentation.models": (wildcards.model, SEG["models"] + ablation),
        "segmentation.trainsets": (wildcards.trainset, plan.seg_trainsets(config)),
        "segmentation.external": (wildcards.evaluated_on, ["test", *SEG["external"]]),
    }
    check_cell(paths.SEG_CELL.format(**dict(wildcards.items())), grid)
    wanted = sorted({wildcards.trainset} | {"real"} & set(SEG["trainsets"]))
    return expand(paths.SEG_METRICS, dataset=DATASET, fold=FOLDS, model=wildcards.model, trainset=wanted)


def figure_segmenters(wildcards):
    """The contour figure's segmenters: each model's on the figure's training set, of the fold."""
    keys = {"dataset": wildcards.dataset, "fold": wildcards.fold, "trainset": SEG_FIGURE_TRAINSET}
    return expand(paths.SEG_WEIGHTS, model=SEG["models"], **keys)


def adapted_quality(keys):
    """The quality JSON of one adapted generator's class-prompt set on its target's fold."""
    where = {"dataset": keys["target"], "fold": keys["fold"], "adjective": "none"}
    if keys["adaptation"] == "full":
        return paths.QUALITY_FULL.format(**where)
    return paths.QUALITY.format(rank=adaptation_rank(keys["adaptation"]), **where)


def cross_domain_quality(wildcards):
    return [adapted_quality(keys) for keys in plan.cross_domain_sets(config)]


def cross_domain_params(wildcards):
    """params.json of each trained adaptation (the table's parameter counts), in set order."""
    return [
        paths.FULL_PARAMS.format(dataset=k["target"], fold=k["fold"])
        if k["adaptation"] == "full"
        else paths.LORA_PARAMS.format(dataset=k["target"], fold=k["fold"], rank=adaptation_rank(k["adaptation"]))
        for k in plan.cross_domain_sets(config)
        if k["adaptation"] != "none"
    ]


rule table1:
    input:
        metrics=all_metrics,
        quality=all_quality,
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
        metrics=all_metrics,
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
        metrics=external_metrics,
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
        metrics=cell_metrics,
        quality=cell_quality,
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
        metrics=seg_cell_metrics,
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
        results=synthetic_evaluations,
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
        augmented_models=augmented_models,
        table2=paths.TABLE.format(name="table2", ext="parquet"),
    output:
        figure=report(paths.FIG2, caption="../report/fig2.rst", category="Figures"),
    params:
        model="{model}",
        fold=lambda wc: int(wc.fold),
        augmented_trainsets=augmented_trainsets,
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
        synthetic=fold_synthetic_sets,
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
        weights=figure_segmenters,
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
        quality=cross_domain_quality,
        params_json=cross_domain_params,
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
