"""The results layout: every path pattern the workflow writes, in one place.

Rules use these patterns as their outputs (Snakemake fills the `{wildcards}`); input functions,
tables, figures and the audit build concrete paths with `str.format`. Nothing parses a path
back into wildcards: a job that needs the keys of its inputs gets them as params or reads them
from the file's content.
"""

RESULTS = "results"

RAW = "results/raw/{dataset}"
DATA = "results/data/{dataset}"
SOURCE = f"{DATA}/source.json"
SOURCE_CACHE = "results/cache/sources/{dataset}.json"
MANIFEST = f"{DATA}/manifest.parquet"
MASKS = f"{DATA}/masks"
MASK_FINDINGS = f"{DATA}/mask_findings.parquet"
DUPLICATES = f"{DATA}/duplicates.parquet"
CURATED = f"{DATA}/curated.parquet"
SPLITS = f"{DATA}/splits.parquet"
CURATION_REPORT = f"{DATA}/curation.md"

TINY_SD = "results/models/tiny-sd"
MODEL_FINGERPRINT = "results/fingerprints/{part}.json"  # part: base, controlnet-mask, -edge
MODEL_CACHE = "results/cache/models/{part}.json"
LORA_FOLD = "results/lora/{dataset}/fold{fold}"
LORA_CACHE = f"{LORA_FOLD}/cache.safetensors"
LORA = f"{LORA_FOLD}/r{{rank}}"
LORA_WEIGHTS = f"{LORA}/pytorch_lora_weights.safetensors"
LORA_LOG = f"{LORA}/train_log.csv"
LORA_PARAMS = f"{LORA}/params.json"
FULL = f"{LORA_FOLD}/full"  # full fine-tuning of the UNet (the cross-domain table's baseline)
FULL_UNET = f"{FULL}/unet"
FULL_LOG = f"{FULL}/train_log.csv"
FULL_PARAMS = f"{FULL}/params.json"

SYNTH = "results/synth/{dataset}/fold{fold}/r{rank}/{adjective}"
SYNTH_IMAGES = f"{SYNTH}/images"
SYNTH_MANIFEST = f"{SYNTH}/manifest.parquet"
QUALITY = "results/quality/{dataset}/fold{fold}/r{rank}/{adjective}.json"
SYNTH_FULL = "results/synth/{dataset}/fold{fold}/full/{adjective}"
SYNTH_FULL_IMAGES = f"{SYNTH_FULL}/images"
SYNTH_FULL_MANIFEST = f"{SYNTH_FULL}/manifest.parquet"
QUALITY_FULL = "results/quality/{dataset}/fold{fold}/full/{adjective}.json"
RANK_SELECTION = "results/quality/{dataset}/fold{fold}/rank_selection.json"

CLS = "results/cls/{dataset}/fold{fold}/{model}/{trainset}"
CLS_WEIGHTS = f"{CLS}/model.safetensors"
CLS_PREDICTIONS = f"{CLS}/predictions.parquet"
CLS_METRICS = f"{CLS}/metrics.json"
ON_SYNTHETIC = "results/cls/{dataset}/fold{fold}/{model}/real/on_synthetic/r{rank}-{adjective}.json"

SEG = "results/seg/{dataset}/fold{fold}/{model}/{trainset}"
SEG_WEIGHTS = f"{SEG}/model.safetensors"
SEG_SCORES = f"{SEG}/scores.parquet"
SEG_FIT = f"{SEG}/fit.json"
SEG_EXTERNAL = f"{SEG}/external/{{external}}.parquet"
SEG_METRICS = f"{SEG}/metrics.json"

CONTROLNET = "results/controlnet/{dataset}/fold{fold}/{condition}"
CONTROLNET_MODEL = f"{CONTROLNET}/model"
CONTROLNET_LOG = f"{CONTROLNET}/train_log.parquet"
MASKED_FOLD = "results/synth_masked/{dataset}/fold{fold}"
ATTRIBUTES = f"{MASKED_FOLD}/attributes.parquet"
MASKED = f"{MASKED_FOLD}/{{setting}}"
MASKED_IMAGES = f"{MASKED}/images"
MASKED_MASKS = f"{MASKED}/masks"
MASKED_CONDITIONS = f"{MASKED}/conditions"
MASKED_MANIFEST = f"{MASKED}/manifest.parquet"
MASKED_QUALITY = "results/quality/{dataset}/fold{fold}/masked/{setting}.json"

MULTITASK = "results/multitask/{dataset}/fold{fold}/{backbone}/{mode}"
MULTITASK_WEIGHTS = f"{MULTITASK}/model.safetensors"
MULTITASK_FIT = f"{MULTITASK}/fit.json"
MULTITASK_PREDICTIONS = f"{MULTITASK}/predictions.npz"
MULTITASK_REFINED = f"{MULTITASK}/predictions_pr.npz"
MULTITASK_METRICS = f"{MULTITASK}/metrics.json"

TABLE = "results/tables/{name}.{ext}"
CELL = "results/cells/table1/{model}/{adjective}/{ratio}.json"
SEG_CELL = "results/cells/seg/{model}/{trainset}/{evaluated_on}.json"
MULTITASK_CELL = "results/cells/multitask/{backbone}/{mode}/pr-{pr}.json"
SAMPLES = "results/figures/samples_{dataset}_fold{fold}.png"
FIG1A = "results/figures/fig1a_{dataset}_real_only_on_synthetic.png"
FIG2 = "results/figures/fig2_{dataset}_gradcam_{model}_fold{fold}.png"
CURATION_FIGURE = "results/figures/curation_{dataset}.png"
SEG_FIGURE = "results/figures/seg_contours_{dataset}_fold{fold}.png"
CLINICAL_FIGURE = "results/figures/clinical_masks_{dataset}_fold{fold}.png"
LEDGER = "results/provenance.{ext}"
RUN_SUMMARY = "results/default_run.md"
LOGS = "results/logs/{rule}"


class _Keep(dict):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def fill(pattern: str, **values: object) -> str:
    """`pattern` with the named wildcards filled in and the others left for Snakemake."""
    return pattern.format_map(_Keep(values))
