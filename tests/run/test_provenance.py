"""Atomic writes leave nothing behind on failure; provenance records hash what they name."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from meddap.common import hashing
from meddap.common.atomic import atomic_dir, atomic_path, write_json
from meddap.common.errors import MeddapError
from meddap.run import jobs, launch, provenance


def test_atomic_path_removes_partial_file(tmp_path: Path) -> None:
    target = tmp_path / "out" / "table.parquet"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert not target.exists()
    assert list((tmp_path / "out").iterdir()) == []


def test_atomic_dir_replaces_only_on_success(tmp_path: Path) -> None:
    target = tmp_path / "images"
    with atomic_dir(target) as tmp:
        (tmp / "a.png").write_bytes(b"1")
    with pytest.raises(RuntimeError), atomic_dir(target) as tmp:
        (tmp / "b.png").write_bytes(b"2")
        raise RuntimeError("killed")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["images"]
    assert [p.name for p in target.iterdir()] == ["a.png"]


def test_files_written_private_get_the_umasks_mode_in_both_writers(tmp_path: Path) -> None:
    """safetensors writes 0600; outputs must be as readable as every other (0644 by umask)."""
    mask = os.umask(0o022)
    try:
        with atomic_dir(tmp_path / "model") as tmp:
            (tmp / "sub").mkdir()
            for name in ("weights.safetensors", "sub/config.json"):
                (tmp / name).write_bytes(b"x")
                os.chmod(tmp / name, 0o600)
        with atomic_path(tmp_path / "lora.safetensors") as tmp:
            tmp.write_bytes(b"x")
            os.chmod(tmp, 0o600)
    finally:
        os.umask(mask)
    written = [tmp_path / "lora.safetensors", *(p for p in (tmp_path / "model").rglob("*"))]
    modes = {p.name: p.stat().st_mode & 0o777 for p in written if p.is_file()}
    assert modes == dict.fromkeys(["lora.safetensors", "weights.safetensors", "config.json"], 0o644)


def _dead_pid() -> int:
    """The pid of a process that has ended."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_atomic_writers_remove_temporaries_of_dead_processes(tmp_path: Path) -> None:
    dead, live = _dead_pid(), os.getppid()
    (tmp_path / f".masks.tmp{dead}").mkdir()
    (tmp_path / f".masks.tmp{dead}" / "a.png").write_bytes(b"half")
    (tmp_path / f".table.tmp{dead}.parquet").write_bytes(b"half")
    kept = [
        f".masks.tmp{live}",  # a running job's
        f".masks.tmp{dead}.png",  # another target's (masks.png)
        f".masks.tmp{dead}x",
        f".table.tmp{live}.parquet",
        f".other.tmp{dead}",
    ]
    for name in kept:
        (tmp_path / name).write_bytes(b"")
    with atomic_dir(tmp_path / "masks") as tmp:
        (tmp / "b.png").write_bytes(b"1")
    with atomic_path(tmp_path / "table.parquet") as tmp:
        tmp.write_bytes(b"2")
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted([*kept, "masks", "table.parquet"])


def test_a_killed_job_leaves_a_temporary_the_next_one_removes(tmp_path: Path) -> None:
    code = (
        "import sys, time\n"
        "from meddap.common.atomic import atomic_dir\n"
        "with atomic_dir(sys.argv[1]) as tmp:\n"
        "    (tmp / 'a.png').write_bytes(b'half')\n"
        "    print(tmp.name, flush=True)\n"
        "    time.sleep(60)\n"
    )
    job = subprocess.Popen(
        [sys.executable, "-c", code, str(tmp_path / "masks")], stdout=subprocess.PIPE, text=True
    )
    name = job.stdout.readline().strip()
    job.kill()  # SIGKILL: no cleanup runs
    job.wait()
    assert name == f".masks.tmp{job.pid}" and (tmp_path / name).is_dir()
    with atomic_dir(tmp_path / "masks") as tmp:
        (tmp / "a.png").write_bytes(b"whole")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["masks"]


def test_directory_hash_changes_with_content(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "x.txt").write_text("x")
    before = hashing.path_sha256(tmp_path / "d")
    (tmp_path / "d" / "x.txt").write_text("y")
    assert hashing.path_sha256(tmp_path / "d") != before


class _Named(list):
    """A stand-in for Snakemake's Namedlist: values in order, names through items()."""

    def __init__(self, **named: object) -> None:
        super().__init__(named.values())
        self._named = named

    def items(self):  # noqa: ANN201
        return self._named.items()


def _smk(tmp_path: Path, **params: object) -> SimpleNamespace:
    src, out = tmp_path / "in.txt", tmp_path / "out.json"
    src.write_text("hello")
    return SimpleNamespace(
        input=_Named(source=str(src)),
        output=_Named(result=str(out)),
        params=_Named(**params),
        wildcards=_Named(dataset="phantom"),
        log=[],
        threads=1,
        rule="copy_upper",
    )


def _upper(*, source: str, result: str, shout: bool) -> None:
    if not shout:
        raise MeddapError("param 'shout' must be true")
    write_json({"text": Path(source).read_text().upper()}, result)


def test_job_records_hashed_inputs_outputs_and_params(tmp_path: Path) -> None:
    jobs.run(_smk(tmp_path, shout=True), _upper)
    out = tmp_path / "out.json"
    record = json.loads(provenance.sidecar(out).read_text())
    assert record["rule"] == "copy_upper" and record["params"] == {"shout": True}
    assert record["wildcards"] == {"dataset": "phantom"}
    assert record["inputs"]["source"][0]["sha256"] == hashlib.sha256(b"hello").hexdigest()
    assert record["outputs"][0]["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
    assert record["packages"]["pandas"] and record["code"]["source_sha256"]


def test_job_records_its_process_start_up_and_cpu(tmp_path: Path) -> None:
    def busy(**kwargs: object) -> None:
        deadline = time.process_time() + 0.35
        while time.process_time() < deadline:
            pass
        _upper(**kwargs)

    jobs.run(_smk(tmp_path, shout=True), busy)
    process = json.loads(provenance.sidecar(tmp_path / "out.json").read_text())["process"]
    # the record rounds to milliseconds: the 0.35 s loop must count as at least 0.3 s
    assert process["cpu_seconds"] - process["startup_cpu_seconds"] >= 0.3
    assert process["startup_seconds"] > 0 and process["max_rss_mb"] > 10


def logged_upper(**kwargs: Any) -> None:
    """`_upper`, logging that it ran (a job for `launch.main` in a new process)."""
    logging.getLogger("meddap").info("the job ran")
    _upper(**kwargs)


def test_a_script_s_main_exits_0_with_its_output_record_and_flushed_log(tmp_path: Path) -> None:
    code = (
        "import sys; from pathlib import Path; from meddap.run import launch\n"
        "from tests.run.test_provenance import _smk\n"
        "smk = _smk(Path(sys.argv[1]), shout=True); smk.log = [sys.argv[1] + '/job.log']\n"
        "launch.main(smk, 'tests.run.test_provenance:logged_upper')\n"
        "print('after main')  # never reached: the process ends in main\n"
    )
    repo = Path(__file__).resolve().parents[2]
    env = {**os.environ, launch.SWITCH: "0"}  # this process runs the job (the server: test_launch)
    cmd = [sys.executable, "-c", code, str(tmp_path)]
    done = subprocess.run(cmd, cwd=repo, env=env, text=True, capture_output=True)
    assert done.returncode == 0, done.stderr
    assert "after main" not in done.stdout
    assert json.loads((tmp_path / "out.json").read_text()) == {"text": "HELLO"}
    assert provenance.sidecar(tmp_path / "out.json").is_file()
    assert "the job ran" in (tmp_path / "job.log").read_text()


def test_job_error_exits_with_one_sentence_and_no_output(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as stop:
        jobs.run(_smk(tmp_path, shout=False), _upper)
    assert str(stop.value) == "meddap: param 'shout' must be true"
    assert not (tmp_path / "out.json").exists()


def _broken(*, source: str, result: str, shout: bool) -> None:
    text = Path(source).read_text()
    raise RuntimeError(f"mat1 and mat2 shapes cannot be multiplied ({len(text)}x2 and 3x4)")


def test_an_unexpected_error_ends_the_job_in_one_sentence_with_the_traceback_in_its_log(
    tmp_path: Path,
) -> None:
    smk = _smk(tmp_path, shout=True)
    smk.log = [str(tmp_path / "job.log")]
    with pytest.raises(SystemExit) as stop:
        jobs.run(smk, _broken)
    message = str(stop.value)
    assert message.startswith("meddap: job copy_upper (dataset=phantom) reading ")
    assert str(tmp_path / "in.txt") in message and "mat1 and mat2 shapes" in message
    assert message.endswith(f"the traceback is in {tmp_path / 'job.log'}")
    assert "\n" not in message and "Traceback" not in message
    log = (tmp_path / "job.log").read_text()
    assert "Traceback (most recent call last)" in log and "in _broken" in log


def test_a_failed_rerun_leaves_no_record_of_the_earlier_run(tmp_path: Path) -> None:
    jobs.run(_smk(tmp_path, shout=True), _upper)
    assert provenance.sidecar(tmp_path / "out.json").exists()
    with pytest.raises(SystemExit):
        jobs.run(_smk(tmp_path, shout=False), _upper)
    assert not provenance.sidecar(tmp_path / "out.json").exists()


def test_a_job_that_writes_no_output_names_it(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as stop:
        jobs.run(_smk(tmp_path, shout=True), lambda *, source, result, shout: None)
    assert (
        str(stop.value)
        == f"meddap: job copy_upper ended without writing its output {tmp_path / 'out.json'}"
    )
