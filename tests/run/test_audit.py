"""`meddap audit`: a verified lineage, and a clear failure for changed, missing or swapped files."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from meddap.cli import main
from meddap.common.atomic import write_json
from meddap.common.errors import MeddapError
from meddap.run import provenance
from meddap.run.audit import audit


def _job(root: Path, rule: str, inputs: list[str], output: str, text: str) -> None:
    (root / output).write_text(text)
    record = provenance.build_record(
        rule=rule,
        inputs={"source": [str(root / p) for p in inputs]},
        outputs=[str(root / output)],
        params={"text": text},
        wildcards={"dataset": "toy"},
        started=provenance.now(),
        ended=provenance.now(),
    )
    for item, relative in zip(record["inputs"]["source"], inputs, strict=True):
        item["path"] = relative  # as Snakemake records them: relative to the working directory
    record["outputs"][0]["path"] = output
    write_json(record, provenance.sidecar(root / output))


@pytest.fixture()
def chain(tmp_path: Path) -> Path:
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "img.png").write_bytes(b"pixels")
    _job(tmp_path, "ingest", ["raw"], "manifest.txt", "m")
    _job(tmp_path, "table", ["manifest.txt"], "table.md", "t")
    return tmp_path


def test_audit_prints_the_verified_lineage(chain: Path, capsys: pytest.CaptureFixture) -> None:
    main(["audit", "table.md", "--root", str(chain)])
    out = capsys.readouterr().out
    assert out.index("rule table") < out.index("rule ingest") < out.index("raw input")
    assert "3 files verified" in out


@pytest.mark.parametrize(
    ("tamper", "named"),
    [
        (lambda root: (root / "raw" / "img.png").write_bytes(b"other"), "raw"),
        (lambda root: (root / "manifest.txt").unlink(), "manifest.txt is missing"),
        (lambda root: (root / "table.md").write_text("swapped"), "table.md has changed"),
    ],
)
def test_a_broken_link_fails_naming_the_file(chain: Path, tamper, named: str) -> None:  # noqa: ANN001
    tamper(chain)
    with pytest.raises(MeddapError, match=named):
        audit("table.md", str(chain))
    with pytest.raises(SystemExit) as stop:
        main(["audit", "table.md", "--root", str(chain)])
    assert named.split()[0] in str(stop.value)


def test_an_upstream_file_substituted_with_its_own_record_fails(chain: Path) -> None:
    """A rerun of ingest with other data has a valid record, but not the one table.md read."""
    _job(chain, "ingest", ["raw"], "manifest.txt", "substituted")
    audit("manifest.txt", str(chain))  # consistent on its own
    with pytest.raises(MeddapError, match="manifest.txt"):
        audit("table.md", str(chain))


def test_a_changed_folder_names_its_first_changed_file(chain: Path) -> None:
    (chain / "raw" / "img.png").rename(chain / "raw" / "moved.png")  # e.g. to another class folder
    with pytest.raises(MeddapError, match=r"raw/img\.png is gone .*0 changed, 1 added, 1 removed"):
        audit("table.md", str(chain))


def test_every_output_of_an_upstream_job_is_verified(tmp_path: Path) -> None:
    """A manifest's masks are the ingest's other output: tampering with one fails the audit."""
    (tmp_path / "masks").mkdir()
    (tmp_path / "masks" / "a.png").write_bytes(b"mask")
    (tmp_path / "manifest.txt").write_text("m")
    record = provenance.build_record(
        rule="ingest",
        inputs={},
        outputs=[str(tmp_path / "manifest.txt"), str(tmp_path / "masks")],
        params={},
        wildcards={},
        started=provenance.now(),
        ended=provenance.now(),
    )
    provenance.write_records(record)
    _job(tmp_path, "table", ["manifest.txt"], "table.md", "t")
    audit("table.md", str(tmp_path))
    (tmp_path / "masks" / "a.png").write_bytes(b"tampered")
    with pytest.raises(MeddapError, match=r"masks/a\.png has changed"):
        audit("table.md", str(tmp_path))


@pytest.mark.parametrize(
    ("content", "why"),
    [
        ('{"rule": "table", "inpu', "could not be read as JSON"),  # truncated
        ("\x00\xff garbage", "could not be read as JSON"),
        ("[]", "is not a provenance record (top level: [] is not of type 'object')"),
        ("{}", "is not a provenance record (top level: 'rule' is a required property)"),
    ],
)
def test_a_damaged_record_stops_naming_it(chain: Path, content: str, why: str) -> None:
    provenance.sidecar(chain / "manifest.txt").write_text(content)
    with pytest.raises(SystemExit) as stop:
        main(["audit", "table.md", "--root", str(chain)])
    assert str(stop.value).startswith(f"meddap: {chain / 'manifest.txt.prov.json'}")
    assert why in str(stop.value) and "\n" not in str(stop.value)


def test_a_record_without_a_key_audit_prints_names_the_key(chain: Path) -> None:
    record = json.loads(provenance.sidecar(chain / "table.md").read_text())
    del record["packages"]
    provenance.sidecar(chain / "table.md").write_text(json.dumps(record))
    with pytest.raises(MeddapError, match=r"table\.md\.prov\.json .*'packages' is a required"):
        audit("table.md", str(chain))


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("nosuch.md", "nosuch.md does not exist"),
        ("", "needs the path of a workflow output, got an empty path"),
        ("/", "/ is the file system's root, not a workflow output"),
        ("table.md.prov.json", "is a provenance record: audit the output it records, table.md"),
    ],
)
def test_a_bad_target_says_what_is_wrong(chain: Path, target: str, message: str) -> None:
    with pytest.raises(MeddapError, match=re.escape(message)):
        audit(target, str(chain))


def test_an_absolute_path_from_another_directory_finds_the_workflow_directory(
    chain: Path, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path_factory.mktemp("elsewhere"))
    assert audit(str(chain / "table.md")).endswith("3 files verified")
    with pytest.raises(MeddapError, match=r"pass that directory as --root \(not "):
        audit(str(chain / "table.md"), str(chain / "raw"))
