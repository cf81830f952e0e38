"""The job launcher: jobs forked from a warm server, statuses and output passed back, a job that
ends with its launcher, and the fall-back to running in the launcher itself."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from meddap.run import launch, provenance
from tests.run.test_provenance import _upper

REPO = Path(__file__).resolve().parents[2]
CLIENT = """import sys; from pathlib import Path
from meddap.run import launch
from tests.run.test_provenance import _smk
smk = _smk(Path(sys.argv[1]), shout=sys.argv[3] == "1"); smk.log = [sys.argv[1] + "/job.log"]
launch.main(smk, sys.argv[2])
"""


def pid_job(*, source: str, result: str, shout: bool) -> None:
    """`_upper`, then its process id and parent's in `result` + '.pid'."""
    _upper(source=source, result=result, shout=shout)
    Path(result + ".pid").write_text(f"{os.getpid()} {os.getppid()}")


def sleeping_job(*, source: str, result: str, shout: bool) -> None:
    """Writes its process id to `result` + '.pid', then sleeps (until killed)."""
    Path(result + ".pid").write_text(str(os.getpid()))
    time.sleep(120)


def dying_job(*, source: str, result: str, shout: bool) -> None:
    """Appends a line to `result` + '.runs', then is killed (as by the OOM killer)."""
    with open(result + ".runs", "a") as runs:
        runs.write("ran\n")
    os.kill(os.getpid(), signal.SIGKILL)


@pytest.fixture
def env(tmp_path: Path) -> Iterator[dict[str, str]]:
    """An environment of its own (so its own server), with the server on; the server is
    stopped afterwards."""
    env = {k: v for k, v in os.environ.items() if k != "SLURM_JOB_ID"}
    env[launch.SWITCH] = "1"  # on, also where a GPU turns it off by default
    env["MEDDAP_TEST_SERVER"] = str(tmp_path)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), str(REPO)])
    yield env
    path = _socket(env)
    for pid in _server_pids(path):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    while list(path.parent.glob(f"{path.name}*")):  # a stopped server removes its files
        assert time.monotonic() < deadline, f"a stopped job server left {path}*"
        time.sleep(0.1)


def _socket(env: dict[str, str]) -> Path:
    code = "from meddap.run import launch; print(launch.socket_path())"
    return Path(_python(["-c", code], env).stdout.strip())


def _server_pids(path: Path) -> list[int]:
    done = subprocess.run(["pgrep", "-f", f"meddap.run.launch {path}"], capture_output=True)
    return [int(p) for p in done.stdout.split()]


def _python(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, *args]
    return subprocess.run(cmd, cwd=REPO, env=env, text=True, capture_output=True, timeout=120)


def _job(work: Path, target: str, env: dict[str, str], shout: bool = True) -> subprocess.Popen:
    args = [sys.executable, "-c", CLIENT, str(work), target, "1" if shout else "0"]
    return subprocess.Popen(args, cwd=REPO, env=env, text=True, stderr=subprocess.PIPE)


def _server_up(env: dict[str, str]) -> Path:
    path = _socket(env)
    code = f"from meddap.run import launch; launch.start_server({str(path)!r})"
    subprocess.run([sys.executable, "-c", code], env=env, check=True)
    deadline = time.monotonic() + 60
    while not path.exists():
        assert time.monotonic() < deadline, "the job server did not start"
        time.sleep(0.2)
    return path


def test_a_job_runs_in_a_process_forked_from_the_server(tmp_path: Path, env: dict) -> None:
    path = _server_up(env)
    job = _job(tmp_path, "tests.run.test_launch:pid_job", env)
    _, stderr = job.communicate(timeout=120)
    assert job.returncode == 0, stderr
    pid, parent = map(int, Path(f"{tmp_path}/out.json.pid").read_text().split())
    assert pid != job.pid and parent == _server_pids(path)[0]
    assert json.loads((tmp_path / "out.json").read_text()) == {"text": "HELLO"}
    record = json.loads(provenance.sidecar(tmp_path / "out.json").read_text())
    assert record["process"]["startup_seconds"] > 0  # the launcher's part counts


def test_a_failing_job_s_sentence_and_status_reach_the_launcher(tmp_path: Path, env: dict) -> None:
    _server_up(env)
    job = _job(tmp_path, "tests.run.test_launch:pid_job", env, shout=False)
    _, stderr = job.communicate(timeout=120)
    assert job.returncode == 1
    assert stderr.strip().endswith("meddap: param 'shout' must be true")
    assert not (tmp_path / "out.json").exists()


def test_a_job_process_killed_mid_way_fails_its_job_once(tmp_path: Path, env: dict) -> None:
    _server_up(env)
    job = _job(tmp_path, "tests.run.test_launch:dying_job", env)
    _, stderr = job.communicate(timeout=120)
    assert job.returncode == 1
    assert "meddap: the process of job copy_upper ended without a status" in stderr
    assert (tmp_path / "out.json.runs").read_text() == "ran\n"  # not run again by its launcher


def test_a_job_ends_when_its_launcher_is_killed(tmp_path: Path, env: dict) -> None:
    _server_up(env)
    job = _job(tmp_path, "tests.run.test_launch:sleeping_job", env)
    marker = tmp_path / "out.json.pid"
    deadline = time.monotonic() + 60
    while not marker.exists() or not marker.read_text():
        assert time.monotonic() < deadline and job.poll() is None, "the job did not start"
        time.sleep(0.1)
    pid = int(marker.read_text())
    assert pid != job.pid
    job.kill()
    job.wait()
    deadline = time.monotonic() + 10
    while Path(f"/proc/{pid}").exists() and "Z" not in _state(pid):
        assert time.monotonic() < deadline, "the job outlived its launcher"
        time.sleep(0.1)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "Z"


def test_without_a_server_the_launcher_runs_the_job_and_starts_one(
    tmp_path: Path, env: dict
) -> None:
    path = _socket(env)
    assert not path.exists()
    job = _job(tmp_path, "tests.run.test_launch:pid_job", env)
    _, stderr = job.communicate(timeout=120)
    assert job.returncode == 0, stderr
    pid, _ = map(int, Path(f"{tmp_path}/out.json.pid").read_text().split())
    assert pid == job.pid
    deadline = time.monotonic() + 60
    while not path.exists():
        assert time.monotonic() < deadline, "no server was started for the next jobs"
        time.sleep(0.2)


def test_a_job_the_server_drops_before_it_starts_runs_in_its_launcher(
    tmp_path: Path, env: dict
) -> None:
    path = _socket(env)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as dropping:
        dropping.bind(str(path))
        dropping.listen(1)
        job = _job(tmp_path, "tests.run.test_launch:pid_job", env)
        conn, _ = dropping.accept()
        conn.close()  # as a server that declines or fails does
        _, stderr = job.communicate(timeout=120)
    path.unlink()
    assert job.returncode == 0, stderr
    pid, _ = map(int, Path(f"{tmp_path}/out.json.pid").read_text().split())
    assert pid == job.pid


def test_an_idle_server_ends_and_removes_its_files(tmp_path: Path, env: dict) -> None:
    path = tmp_path / "jobs.sock"
    Path(f"{path}.log").write_text("")
    code = "import sys; from pathlib import Path; from meddap.run import launch\n"
    code += "launch.IDLE_SECONDS = 0.5; launch.serve(Path(sys.argv[1]))"
    done = _python(["-c", code, str(path)], env)
    assert done.returncode == 0, done.stderr
    assert not list(tmp_path.glob("jobs.sock*"))


def test_the_server_key_ignores_per_job_thread_counts_only(monkeypatch) -> None:
    key = launch.server_key()
    monkeypatch.setenv("OMP_NUM_THREADS", "7")
    assert launch.server_key() == key
    monkeypatch.setenv("MEDDAP_SOME_SETTING", "1")
    assert launch.server_key() != key


def test_the_server_is_off_under_slurm_and_by_its_switch(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setattr(launch, "NVIDIA_GPUS", str(tmp_path / "gpus"))
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    monkeypatch.delenv(launch.SWITCH, raising=False)
    assert launch.server_enabled()
    monkeypatch.setenv(launch.SWITCH, "0")
    assert not launch.server_enabled()
    monkeypatch.delenv(launch.SWITCH)
    monkeypatch.setenv("SLURM_JOB_ID", "42")
    assert not launch.server_enabled()
    monkeypatch.setenv(launch.SWITCH, "1")
    assert launch.server_enabled()
    monkeypatch.setenv(launch.SWITCH, "yes")
    with pytest.raises(SystemExit, match="MEDDAP_JOB_SERVER is 'yes'; expected 0 or 1"):
        launch.server_enabled()


def test_the_server_is_off_by_default_with_an_nvidia_gpu(monkeypatch, tmp_path: Path) -> None:
    (tmp_path / "gpus" / "0000:01:00.0").mkdir(parents=True)
    monkeypatch.setattr(launch, "NVIDIA_GPUS", str(tmp_path / "gpus"))
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    monkeypatch.delenv(launch.SWITCH, raising=False)
    assert not launch.server_enabled()
    monkeypatch.setenv(launch.SWITCH, "1")
    assert launch.server_enabled()
