# meddap: the MEDDAP study as a Snakemake workflow. Logic lives in src/meddap; rules stay thin.
import sys
from pathlib import Path

# Jobs use this checkout's code, whatever environment (local, conda, cluster node) runs them.
sys.path.insert(0, str(Path(workflow.basedir) / "src"))

from meddap.run.config import validate_config
from meddap.run.jobs import export_source_path

export_source_path(str(Path(workflow.basedir) / "src"))


# The default is merged under any --configfile, whatever the working directory.
configfile: Path(workflow.basedir) / "config" / "config.yaml"


report: "workflow/report/workflow.rst"


validate_config(config, workflow.source_path("workflow/schemas/config.schema.yaml"))


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/lora.smk"
include: "workflow/rules/synth.smk"
include: "workflow/rules/cls.smk"
include: "workflow/rules/seg.smk"
include: "workflow/rules/pairs.smk"
include: "workflow/rules/multitask.smk"
include: "workflow/rules/report.smk"


# Light rules run where snakemake runs (a login node); everything else is a cluster job.
localrules:
    all,
    fetch_dataset,
    fingerprint_source,
    fingerprint_model,
    select_rank,
    table1,
    table2,
    table3,
    table1_cell,
    figure_1a,
    sample_figure,
    ledger,
    run_summary,


rule all:
    input:
        plan.stage_targets(config),
        paths.LEDGER.format(ext="parquet"),
        paths.RUN_SUMMARY,
    default_target: True
