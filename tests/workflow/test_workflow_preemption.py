"""Preemption: a long job SIGKILLed mid-way leaves no output; its rerun resumes and matches.

One workdir runs LoRA training, synthesis and a classifier uninterrupted; a copy of it kills each
of those jobs once its first checkpoint (or image) is on disk, the way SLURM kills a job at its
time limit or on preemption, then reruns the same target. On the local SLURM cluster, a LoRA job
killed with scancel is resubmitted by the profile's retries and resumes. Config:
.test/preemption.yaml.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest

from meddap.common.hashing import path_sha256
from tests.snakemake_runner import command, snakemake

pytestmark = pytest.mark.slow

CASE = "preemption"  # .test/preemption.yaml

LORA = "results/lora/phantom/fold0/r2"
SYNTH = "results/synth/phantom/fold0/r2/none"
CLS = "results/cls/phantom/fold0/squeezenet1_1/r2-none-100"
UPSTREAM = (
    "results/lora/phantom/fold0/cache.safetensors",
    "results/data/phantom_external/manifest.parquet",
    "results/cls/phantom/fold0/squeezenet1_1/real/metrics.json",
)
# (target, script whose process is killed, what shows the job is under way)
JOBS = {
    "lora": (f"{LORA}/pytorch_lora_weights.safetensors", "train_lora", f"{LORA}/checkpoint.pt"),
    "synthesis": (f"{SYNTH}/manifest.parquet", "synthesize", f"{SYNTH}/.images.partial"),
    "classifier": (f"{CLS}/metrics.json", "train_classifier", f"{CLS}/checkpoint.pt"),
}


def _descendants(pid: int) -> list[int]:
    """All processes below `pid` (from /proc)."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        children = parents.get(todo.pop(), [])
        found += children
        todo += children
    return found


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _started(marker: Path) -> bool:
    """A checkpoint file, or a folder holding at least one checkpoint or image."""
    return marker.is_file() or (marker.is_dir() and any(marker.iterdir()))


def _start(work: Path, target: str, *extra: str, env: dict | None = None) -> subprocess.Popen:
    cmd = [*command(work, target, case=CASE), *extra]
    environ = {**os.environ, **(env or {})}
    return subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=environ
    )


def _wait_for(marker: Path, main: subprocess.Popen) -> None:
    """Until `marker` shows progress (or snakemake ends, or 10 minutes pass)."""
    deadline = time.monotonic() + 600
    while not _started(marker) and main.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)


def _kill_when(work: Path, target: str, script: str, marker: Path) -> None:
    """Run `target`; SIGKILL the job's script process once `marker` shows progress."""
    main = _start(work, target)
    _wait_for(work / marker, main)
    victims = [p for p in _descendants(main.pid) if f"{script}.py" in _cmdline(p)]
    assert victims, f"no running {script} job to kill"
    for pid in victims:
        os.kill(pid, signal.SIGKILL)
    _, stderr = main.communicate(timeout=600)
    assert main.returncode != 0, "the killed job was reported as a success"
    assert "Error in rule" in stderr, stderr[-2000:]


def _same(a: Path, b: Path, target: str) -> None:
    """Outputs equal byte for byte; manifests up to their absolute image paths."""
    folder = Path(target).parent
    for name in sorted(p.name for p in (a / folder).iterdir() if not p.name.startswith(".")):
        left, right = a / folder / name, b / folder / name
        if name.endswith(".prov.json") or name == "train_log.csv":
            continue  # times and hosts differ; the training log has wall-clock seconds
        if name == "manifest.parquet":
            tables = [pd.read_parquet(p).drop(columns="image_path") for p in (left, right)]
            pd.testing.assert_frame_equal(*tables)
        else:
            assert path_sha256(left) == path_sha256(right), name


@pytest.fixture(scope="module")
def twins(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """An uninterrupted run, and two copies of its upstream state for the killed runs."""
    plain = tmp_path_factory.mktemp("plain")
    done = snakemake(plain, *UPSTREAM, case=CASE)
    assert done.returncode == 0, done.stderr[-3000:]
    killed, on_slurm = tmp_path_factory.mktemp("killed"), tmp_path_factory.mktemp("on_slurm")
    for copy in (killed, on_slurm):
        shutil.copytree(plain, copy, dirs_exist_ok=True, symlinks=True)
    targets = [target for target, _, _ in JOBS.values()]
    done = snakemake(plain, *targets, case=CASE)
    assert done.returncode == 0, done.stderr[-3000:]
    return plain, killed, on_slurm


@pytest.mark.parametrize("job", list(JOBS))  # in pipeline order: each needs the one before
def test_a_killed_job_leaves_no_output_and_its_rerun_resumes_to_the_same_result(
    twins: tuple[Path, Path, Path], job: str
) -> None:
    plain, killed, _ = twins
    target, script, marker = JOBS[job]
    _kill_when(killed, target, script, Path(marker))
    assert not (killed / target).exists()
    assert _started(killed / marker), "the killed job left nothing to resume from"
    done = snakemake(killed, target, case=CASE)
    assert done.returncode == 0, done.stderr[-3000:]
    log = (killed / "results" / "logs" / script / "phantom").rglob("*.log")
    assert any("resumed" in p.read_text() for p in log)
    assert not (killed / marker).exists()
    _same(plain, killed, target)


def _slurm_job(rule: str, work: Path) -> str:
    """The id of the SLURM job of `rule` running for `work` (its log lies in `work`)."""
    fields = ["squeue", "-h", "-O", "JobID:20,StdOut:2000"]
    queue = subprocess.run(fields, capture_output=True, text=True).stdout
    rows = [line.split() for line in queue.splitlines()]
    jobs = [j for j, log in rows if log.startswith(str(work)) and f"/rule_{rule}/" in log]
    assert len(jobs) == 1, queue
    return jobs[0]


@pytest.mark.slurm
def test_a_slurm_job_killed_mid_way_is_resubmitted_and_resumes(
    twins: tuple[Path, Path, Path], slurm_env: dict[str, str]
) -> None:
    """scancel --signal=KILL, as on preemption; the profile's `retries` resubmit the job."""
    plain, _, work = twins
    target, script, marker = JOBS["lora"]
    main = _start(work, target, "--profile", "slurm", env=slurm_env)
    _wait_for(work / marker, main)
    killed = subprocess.run(["scancel", "--signal=KILL", "--full", _slurm_job(script, work)])
    assert killed.returncode == 0
    _, stderr = main.communicate(timeout=900)
    assert main.returncode == 0, stderr[-3000:]
    assert "Trying to restart job" in stderr
    assert "resumed from" in (work / "results/logs/train_lora/phantom/fold0/r2.log").read_text()
    _same(plain, work, target)
