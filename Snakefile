# meddap: the MEDDAP study as a Snakemake workflow. Logic lives in src/meddap; rules stay thin.
from meddap.config import validate_config


configfile: "config/config.yaml"


validate_config(config, workflow.source_path("workflow/schemas/config.schema.yaml"))


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"


rule all:
    input:
        all_targets(),
    default_target: True
