"""Content-tracked sources through real Snakemake: a `path:` folder or archive reruns what
depends on it when, and only when, its content changes, and `meddap audit` names the file.

Runs the data stage on a scratch copy of the real BUSI sample (.test/busi-sample.yaml).
"""

from __future__ import annotations

import os
import shutil
import zipfile
from pathlib import Path

import pytest

from meddap.common.errors import MeddapError
from meddap.run.audit import audit
from tests.snakemake_runner import planned_jobs, snakemake

pytestmark = pytest.mark.slow
MANIFEST = "results/data/busi/manifest.parquet"
DUPLICATES = "results/data/busi/duplicates.parquet"


def _run(work: Path, path: Path, target: str = MANIFEST) -> dict:
    work.mkdir(exist_ok=True)
    config = {"datasets": {"busi": {"path": str(path)}}}
    run = snakemake(work, target, case="busi-sample", config=config)
    assert run.returncode == 0, run.stderr[-3000:]
    return config


@pytest.fixture()
def folder_run(tmp_path: Path, busi_sample: Path) -> tuple[Path, Path, dict]:
    folder = tmp_path / "data" / "busi"
    shutil.copytree(busi_sample, folder)
    work = tmp_path / "work"
    return work, folder, _run(work, folder, DUPLICATES)


def test_touching_reruns_nothing_but_changed_content_reruns_ingest(folder_run) -> None:  # noqa: ANN001
    work, folder, config = folder_run
    image = folder / "benign" / "benign (2).png"
    os.utime(image)  # new mtime, same bytes (as after a copy without -p)
    os.utime(folder)
    assert planned_jobs(work, DUPLICATES, case="busi-sample", config=config) == {}
    image.write_bytes((folder / "benign" / "benign (4).png").read_bytes())
    plan = planned_jobs(work, DUPLICATES, case="busi-sample", config=config)
    assert {"fingerprint_source", "ingest", "find_duplicates"} <= set(plan)


def test_an_image_moved_to_another_class_folder_reruns_ingest(folder_run) -> None:  # noqa: ANN001
    work, folder, config = folder_run
    (folder / "normal" / "normal (1).png").rename(folder / "normal" / "normal (900).png")
    (folder / "normal" / "normal (1)_mask.png").rename(folder / "normal" / "normal (900)_mask.png")
    assert "ingest" in planned_jobs(work, MANIFEST, case="busi-sample", config=config)


def test_audit_names_the_changed_image_and_the_tampered_mask(folder_run) -> None:  # noqa: ANN001
    work, folder, _ = folder_run
    assert "files verified" in audit(DUPLICATES, str(work))
    mask = work / "results" / "data" / "busi" / "masks" / "benign_42.png"
    saved = mask.read_bytes()
    mask.write_bytes((mask.parent / "benign_131.png").read_bytes())
    with pytest.raises(MeddapError, match=r"masks/benign_42\.png has changed"):
        audit(DUPLICATES, str(work))
    mask.write_bytes(saved)
    (folder / "malignant" / "malignant (1).png").write_bytes(b"other bytes")
    with pytest.raises(MeddapError, match=r"malignant \(1\)\.png has changed"):
        audit(DUPLICATES, str(work))


def _zip(folder: Path, archive: Path, skip: str = "") -> None:
    with zipfile.ZipFile(archive, "w") as out:
        for file in sorted(folder.rglob("*.png")):
            if file.name != skip:
                out.write(file, file.relative_to(folder.parent).as_posix())


def test_a_replaced_archive_is_extracted_again_and_audited(
    tmp_path: Path, busi_sample: Path
) -> None:
    archive, work = tmp_path / "busi.zip", tmp_path / "work"
    _zip(busi_sample, archive)
    config = _run(work, archive)
    report = audit(MANIFEST, str(work))
    assert str(archive) in report
    _zip(busi_sample, archive, skip="benign (2).png")
    with pytest.raises(MeddapError, match=r"busi\.zip has changed"):
        audit(MANIFEST, str(work))
    plan = planned_jobs(work, MANIFEST, case="busi-sample", config=config)
    assert {"fetch_dataset", "fingerprint_source", "ingest"} <= set(plan)
