"""The whole grid through `snakemake --profile slurm` on the local cluster, on .test/full.yaml.

Data to tables, GPU rules on the cluster's fake GPUs; then provenance, cells, and what dry runs
plan after editing the grid (only new jobs; a changed stage and what depends on it).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest

from meddap.common import hashing
from meddap.common.errors import MeddapError
from meddap.run import provenance
from meddap.run.audit import audit
from tests.snakemake_runner import planned_jobs, snakemake

pytestmark = [pytest.mark.slow, pytest.mark.slurm]

CELL = "results/cells/table1/squeezenet1_1/bright/100.json"


GPU_RULES = (
    "train_lora",
    "synthesize",
    "train_classifier",
    "train_segmenter",
    "score_segmenter",
    "train_multitask",
)
CLUSTER_RULES = (*GPU_RULES, "curate", "quality")
DATA_AND_LORA = (
    "fetch_dataset",
    "fingerprint_source",
    "ingest",
    "curate",
    "split_folds",
    "encode_fold",
    "train_lora",
)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, slurm_env: dict[str, str]) -> Path:
    work = tmp_path_factory.mktemp("full")
    done = snakemake(work, case="full", extra=("--profile", "slurm"), env=slurm_env)
    assert done.returncode == 0, done.stderr[-4000:]
    assert "Using profile slurm" in done.stderr
    return work


def edited(**changes: object) -> dict:
    """An override of .test/full.yaml's dotted keys, e.g. edited(**{"lora.ranks": [2, 4, 8]})."""
    config: dict = {}
    for dotted, value in changes.items():
        *parents, leaf = dotted.split(".")
        node = config
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return config


def edited_plan(run: Path, **changes: object) -> dict[str, int]:
    """What a dry run of the grid plans after editing .test/full.yaml's dotted keys."""
    return planned_jobs(run, case="full", config=edited(**changes))


def next_image_set(run: Path) -> str:
    """One synthetic image folder of the run, relative to it."""
    images = next((run / "results" / "synth").rglob("images"))
    return str(images.relative_to(run))


def records(run: Path, rule: str) -> list[dict]:
    """Provenance records of every output of `rule`."""
    found = [json.loads(p.read_text()) for p in (run / "results").rglob("*.prov.json")]
    return [r for r in found if r["rule"] == rule]


def test_tables_cover_the_grid_with_sources(run: Path) -> None:
    tables = run / "results" / "tables"
    table1 = pd.read_parquet(tables / "table1.parquet")
    assert sorted(table1.trainset) == ["bright-100", "bright-50", "none-100", "none-50", "real"]
    assert (table1.n_folds == 2).all()
    for sources in table1.sources:
        assert all((run / s).is_file() for s in sources.split(";"))
    table2 = pd.read_csv(tables / "table2.csv")
    assert list(table2.trainset)[0] == "real" and len(table2) == 2
    assert (tables / "table3.md").read_text().startswith("Table 3")
    seg = pd.read_parquet(tables / "seg_table.parquet")
    assert sorted(zip(seg.trainset, seg.evaluated_on, strict=True)) == [
        ("aug-mirror", "external:phantom_external"),
        ("aug-mirror", "test"),
        ("real", "external:phantom_external"),
        ("real", "test"),
    ]
    assert (seg.n_folds == 2).all() and seg.dice_mean.between(0, 1).all()
    figures = run / "results" / "figures"
    assert (figures / "fig1a_phantom_real_only_on_synthetic.png").stat().st_size > 0
    assert (figures / "seg_contours_phantom_fold0.png").stat().st_size > 0
    assert (figures / "fig2_phantom_gradcam_squeezenet1_1_fold0.png").stat().st_size > 0


def test_every_fold_and_model_group_trains_with_equal_updates(run: Path) -> None:
    """Training sets of different sizes (real, +50 %, +100 %) get the same optimizer updates."""
    records = [
        json.loads(path.read_text())
        for family in ("cls", "seg", "multitask")
        for path in (run / "results" / family).rglob("*/metrics.json")
    ]
    groups: dict[tuple, set[int]] = {}
    for record in records:
        key = (record["fold"], record.get("model", record.get("backbone")))
        groups.setdefault(key, set()).add(record["updates"])
    assert len(groups) == 2 * 3  # 2 folds x (classifier, segmenter, multi-task backbone)
    assert all(len(updates) == 1 for updates in groups.values()), groups
    table1 = pd.read_parquet(run / "results" / "tables" / "table1.parquet")
    assert (table1.updates == 8).all() and table1.kept_update.between(1, 8).all()
    summary = (run / "results" / "default_run.md").read_text()
    assert "| updates | kept_update |" in summary and "jobs; their own work sums to" in summary


def test_every_fold_chose_a_trained_rank(run: Path) -> None:
    for fold in (0, 1):
        selection = run / f"results/quality/phantom/fold{fold}/rank_selection.json"
        chosen = json.loads(selection.read_text())
        assert chosen["rank"] in (2, 4) and chosen["metric"].startswith("fd_")


def test_table_provenance_hashes_its_inputs(run: Path) -> None:
    table = run / "results" / "tables" / "table1.parquet"
    record = json.loads(provenance.sidecar(table).read_text())
    assert record["rule"] == "table1"
    for item in record["inputs"]["metrics"]:
        assert item["sha256"] == hashing.file_sha256(run / item["path"])
    lineage = audit("results/tables/table1.parquet", str(run))
    assert "rule train_lora" in lineage and "rule fetch_dataset" in lineage
    assert "results/raw/phantom\n  rule fetch_dataset" in lineage
    selection = "results/quality/phantom/fold0/rank_selection.json"  # a checkpoint's output
    for output in (selection, next_image_set(run)):
        assert "rule fetch_dataset" in audit(output, str(run))


def test_a_cell_after_the_grid_needs_one_job_and_reruns_are_no_ops(run: Path) -> None:
    assert planned_jobs(run, case="full") == {}
    assert planned_jobs(run, CELL, case="full") == {"table1_cell": 1}
    done = snakemake(run, CELL, case="full")
    assert done.returncode == 0, done.stderr[-2000:]
    cell = json.loads((run / CELL).read_text())
    assert len(cell["per_fold"]) == 2


def test_a_segmentation_cell_needs_one_job(run: Path) -> None:
    cell = "results/cells/seg/unet/aug-mirror/test.json"
    assert planned_jobs(run, cell, case="full") == {"seg_cell": 1}
    done = snakemake(run, cell, case="full")
    assert done.returncode == 0, done.stderr[-2000:]
    assert [f["fold"] for f in json.loads((run / cell).read_text())["per_fold"]] == [0, 1]


def test_auditing_the_segmentation_table_names_a_tampered_mask(run: Path) -> None:
    table = "results/tables/seg_table.parquet"
    assert "rule train_segmenter" in audit(table, str(run))
    mask = sorted((run / "results/data/phantom/masks").glob("*.png"))[0]
    original, stat = mask.read_bytes(), mask.stat()
    try:
        mask.write_bytes(original + b"tampered")
        with pytest.raises(MeddapError, match=rf"{mask.name} has changed since folder"):
            audit(table, str(run))
    finally:  # the later tests see the run as it was, mtime included
        mask.write_bytes(original)
        os.utime(mask, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def test_cluster_jobs_ran_on_slurm_gpu_rules_on_its_gpus(run: Path) -> None:
    for rule in CLUSTER_RULES:
        ids = {r["slurm_job_id"] for r in records(run, rule)}
        assert ids and all(i and i.isdigit() for i in ids), (rule, ids)
    assert all(r["slurm_job_id"] is None for r in records(run, "table1"))  # a local rule
    for rule in GPU_RULES:  # SLURM gave each a fake GPU
        assert {r["cuda_visible_devices"] for r in records(run, rule)} <= {"0", "1"}, rule
    assert all(r["cuda_visible_devices"] is None for r in records(run, "curate"))


def test_adding_an_adjective_schedules_only_its_jobs(run: Path) -> None:
    jobs = edited_plan(run, **{"synthesis.adjectives": ["none", "bright", "dark"]})
    folds, ratios = 2, 2
    assert jobs["synthesize"] == folds and jobs["quality"] == folds
    assert jobs["train_classifier"] == folds * ratios
    assert not set(jobs) & {*DATA_AND_LORA, "select_rank"}


def test_adding_a_ratio_within_the_pool_schedules_only_its_classifiers(run: Path) -> None:
    jobs = edited_plan(run, **{"synthesis.ratios": [50, 75, 100]})
    assert jobs["train_classifier"] == 2 * 2  # 2 folds x 2 adjectives
    assert not set(jobs) & {*DATA_AND_LORA, "synthesize", "quality", "select_rank"}


def test_adding_a_rank_trains_only_that_rank(run: Path) -> None:
    jobs = edited_plan(run, **{"lora.ranks": [2, 4, 8]})
    assert jobs["train_lora"] == 2 and jobs["synthesize"] >= 2 and jobs["select_rank"] == 2
    assert not set(jobs) & {"encode_fold", "build_tiny_sd", "curate", "split_folds"}


def test_adding_a_model_trains_only_that_model(run: Path) -> None:
    jobs = edited_plan(run, **{"classifier.models": ["squeezenet1_1", "resnet34"]})
    assert jobs["train_classifier"] == 2 * (1 + 2 * 2)  # per fold: real + 2 adjectives x 2 ratios
    assert not set(jobs) & {*DATA_AND_LORA, "synthesize", "quality", "select_rank"}


@pytest.mark.parametrize(
    ("key", "value", "rule", "at_least", "untouched"),
    [
        ("lora.learning_rate", 5e-4, "train_lora", 4, ("encode_fold", "curate")),
        ("synthesis.sampling.steps", 3, "synthesize", 4, DATA_AND_LORA),
        ("classifier.training.steps", 12, "train_classifier", 2, (*DATA_AND_LORA, "synthesize")),
        ("curation.policy", "keep_one_consistent", "curate", 1, ("ingest", "find_duplicates")),
        (
            "segmentation.training.steps",
            9,
            "train_segmenter",
            4,
            (*DATA_AND_LORA, "train_classifier"),
        ),
    ],
)
def test_changing_a_stage_reruns_it_and_its_dependants_only(
    run: Path, key: str, value: object, rule: str, at_least: int, untouched: tuple[str, ...]
) -> None:
    """Jobs behind a rank choice that reruns show up only once it has run (a checkpoint)."""
    jobs = edited_plan(run, **{key: value})
    assert jobs.get(rule, 0) >= at_least, jobs
    assert not set(jobs) & set(untouched), jobs


def test_the_ledger_has_a_row_per_job_and_the_report_shows_tables_figures_ledger(
    run: Path,
) -> None:
    ledger = pd.read_parquet(run / "results" / "provenance.parquet")
    jobs = ledger.rule.value_counts()
    assert jobs["train_lora"] == 2 * 2 and jobs["train_classifier"] == 2 * (1 + 2 * 2)
    assert jobs["train_segmenter"] == 2 * 2
    assert ledger[ledger.rule == "train_lora"].slurm_job_id.str.isdigit().all()
    assert (ledger.seconds >= 0).all() and ledger.source_sha256.nunique() == 1
    html = run / "report.html"
    done = snakemake(run, case="full", extra=("--report", str(html)))
    assert done.returncode == 0, done.stderr[-2000:]
    page = html.read_text()
    shown_files = ("table1.csv", "table3.csv", "seg_table.csv", "fig1a_phantom", "fig2_phantom")
    for shown in (*shown_files, "seg_contours_phantom", "provenance.csv"):
        assert shown in page, shown


def test_the_shipped_generator_is_fingerprinted_once_and_recorded_by_every_job_using_it(
    run: Path,
) -> None:
    shipped = Path(__file__).resolve().parents[2] / "resources" / "tiny-sd-phantom"
    expected = {
        f.relative_to(shipped).as_posix(): hashing.file_sha256(f)
        for f in hashing.tree_files(shipped)
    }
    fingerprint = "results/fingerprints/base.json"
    listed = json.loads((run / fingerprint).read_text())["files"]
    assert {name: item["sha256"] for name, item in listed.items()} == expected
    (made,) = [r for r in records(run, "fingerprint_model") if r["wildcards"]["part"] == "base"]
    assert {i["path"] for i in made["inputs"]["folder"]} == {str(shipped)}
    digest = hashing.file_sha256(run / fingerprint)
    for rule in ("encode_fold", "train_lora", "synthesize"):
        for record in records(run, rule):
            recorded = {i["path"]: i["sha256"] for i in record["inputs"]["other"]}
            assert recorded.get(fingerprint) == digest, rule
            assert not any(path.startswith(str(shipped)) for path in recorded), rule


def test_rank_0_synthesises_with_the_base_model_alone(run: Path) -> None:
    """Run last: it adds the base model's set of fold 0 to the grid's results."""
    target = "results/synth/phantom/fold0/r0/none/manifest.parquet"
    ranks = edited(**{"lora.ranks": [0, 2, 4]})
    assert planned_jobs(run, target, case="full", config=ranks) == {"synthesize": 1}
    done = snakemake(run, target, case="full", config=ranks)
    assert done.returncode == 0, done.stderr[-2000:]
    table = pd.read_parquet(run / target)
    assert table.lora_sha256.isna().all() and set(table["rank"]) == {0}
    assert "rule fetch_dataset" in audit(target, str(run))
