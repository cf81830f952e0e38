"""Start a workflow script's job: in a process forked from a warm job server, or in this one.

Every Snakemake `script:` job is a new Python process, and importing torch, MONAI or diffusers
costs it 2-8 s of CPU, more than many jobs' own work. Off SLURM, the first job starts a job
server: a detached process that imports torch, then each job module the first time a job asks
for it, and forks one process per job from there. The job process takes the launcher's stdin,
stdout and stderr, working folder, environment and `sys.path`, runs `jobs.run`, and hands its
exit status back; the launcher (the process Snakemake started) exits with it. If the launcher
dies (Snakemake cancelled the job), the job process ends at once. Where no server answers, the
launcher starts one for the jobs that follow and runs its own job itself.

A server serves one code version and environment (`server_key`: the interpreter, meddap's
sources, the environment but for the per-job thread counts), ends after `IDLE_SECONDS` without
jobs, and never forks once a Python thread or CUDA runs in it. `MEDDAP_JOB_SERVER=0` turns it
off, `=1` on where it is off by default (under SLURM, with an NVIDIA GPU).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib
import logging
import os
import pickle
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import IO, Any, NoReturn

from meddap.run import usage

SWITCH = "MEDDAP_JOB_SERVER"
IDLE_SECONDS = 30.0
# Left out of the key: Snakemake sets the thread counts per job (jobs set torch's themselves, in
# `jobs.run`), the shell the folders, pytest the test's name
PER_JOB_ENV = frozenset(
    {
        "OMP_NUM_THREADS",
        "GOTO_NUM_THREADS",
        "OPENBLAS_NUM_THREADS",
        "MKL_NUM_THREADS",
        "VECLIB_MAXIMUM_THREADS",
        "NUMEXPR_NUM_THREADS",
        "PWD",
        "OLDPWD",
        "_",
        "PYTEST_CURRENT_TEST",
    }
)
STATUS_BYTES = 4
NVIDIA_GPUS = "/proc/driver/nvidia/gpus"
STARTED = b"S"  # the job process's first byte to its launcher; then its status


def main(smk: Any, target: str) -> NoReturn:
    """A workflow script's body: run job `smk` with `target` ("module:function"), then exit."""
    launcher = usage.process_usage()
    if server_enabled():
        path = socket_path()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
                conn.connect(str(path))
                status = _hand_over(conn, smk, target, launcher)
        except (ConnectionRefusedError, FileNotFoundError):
            start_server(path)
        except OSError:
            pass  # a server that went away before the job started: run it here
        else:
            if status is not None:
                _exit_with(status)
    _exit_with(_run_here(smk, target, None))


def server_enabled() -> bool:
    """The switch's 1 or 0; unset: on, but under SLURM (one job per allocation: nothing to
    share) and on a machine with an NVIDIA GPU (forking after CUDA's driver has started is unsafe,
    and this path is tested on CPUs only)."""
    switch = os.environ.get(SWITCH)
    if switch not in (None, "0", "1"):
        sys.exit(f"meddap: environment variable {SWITCH} is {switch!r}; expected 0 or 1")
    if switch is None:
        switch = "0" if "SLURM_JOB_ID" in os.environ or any(Path(NVIDIA_GPUS).glob("*")) else "1"
    return switch == "1" and hasattr(socket, "send_fds")


def server_key() -> str:
    """What a server's imported code and environment depend on, hashed."""
    digest = hashlib.sha256(f"{sys.executable}\0{sys.version}\0".encode())
    package = Path(__file__).parents[1]
    for source in sorted(package.rglob("*.py")):
        digest.update(str(source.relative_to(package)).encode() + b"\0" + source.read_bytes())
    for name in sorted(set(os.environ) - PER_JOB_ENV):
        digest.update(f"{name}={os.environ[name]}\0".encode())
    return digest.hexdigest()[:20]


def socket_path() -> Path:
    """The server socket for this code and environment, in the user's temporary folder."""
    return Path(tempfile.gettempdir()) / f"meddap-jobs-{os.getuid()}-{server_key()}.sock"


def start_server(path: Path) -> None:
    """Start a detached server at `path` (one that finds another running exits at once); its
    own errors go to `path` + ".log"."""
    with open(f"{path}.log", "a") as log:
        subprocess.Popen(
            [sys.executable, "-m", "meddap.run.launch", str(path)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
            close_fds=True,
        )


def _exit_with(status: int) -> NoReturn:
    """End the process at once: Python's teardown of one that imported torch and MONAI costs
    about 1.5 s of CPU and does nothing a finished job needs (its outputs are renamed, its logs
    shut down)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


def _hand_over(conn: socket.socket, smk: Any, target: str, launcher: usage.Usage) -> int | None:
    """Send the job to the server and wait for its process's exit status; None if the server
    declined it or closed before the job started (the launcher runs it then)."""
    request = pickle.dumps(
        {
            "target": target,
            "smk": smk,
            "cwd": os.getcwd(),
            "env": dict(os.environ),
            "path": list(sys.path),
            "launcher": launcher,
        }
    )
    header = len(request).to_bytes(8, "big")
    socket.send_fds(conn, [header], [0, 1, 2])
    conn.sendall(request)
    if _receive(conn, 1) != STARTED:
        return None
    try:  # the job started: whatever happens now, it is not run a second time
        status = _receive(conn, STATUS_BYTES)
    except OSError:
        status = None
    if status is None:
        sys.stderr.write(f"meddap: the process of job {smk.rule} ended without a status\n")
        return 1
    return int.from_bytes(status, "big", signed=True)


def _receive(conn: socket.socket, size: int) -> bytes | None:
    """Exactly `size` bytes from `conn`, or None if it closed first."""
    data = b""
    while len(data) < size:
        part = conn.recv(size - len(data))
        if not part:
            return None
        data += part
    return data


def _run_here(smk: Any, target: str, launcher: usage.Usage | None) -> int:
    """Run the job in this process; its exit status (`jobs.run` exits with a sentence)."""
    from meddap.run import jobs

    module, name = target.split(":")
    try:
        jobs.run(smk, getattr(importlib.import_module(module), name), launcher)
    except SystemExit as end:
        if isinstance(end.code, str):
            sys.stderr.write(end.code + "\n")
            return 1
        return int(end.code or 0)
    finally:
        logging.shutdown()
    return 0


def serve(path: Path) -> None:
    """The server: import torch, then accept jobs until `IDLE_SECONDS` pass without one."""
    lock = open(f"{path}.lock", "w")  # noqa: SIM115  # held for the server's life
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return
    os.chdir("/")
    os.environ["PYTORCH_NVML_BASED_CUDA_CHECK"] = "1"  # is_available() without starting CUDA
    importlib.import_module("torch")
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(16)
    listener.settimeout(1.0)
    try:
        _accept(listener, lock)
    finally:
        _remove_files(path)


def _remove_files(path: Path) -> None:
    """An ending server's socket, lock and (if empty) log; the lock is still held here."""
    log = Path(f"{path}.log")
    leftovers = [path, Path(f"{path}.lock")] + ([log] if _is_empty(log) else [])
    for leftover in leftovers:
        with contextlib.suppress(FileNotFoundError):
            leftover.unlink()


def _is_empty(path: Path) -> bool:
    try:
        return path.stat().st_size == 0
    except FileNotFoundError:
        return False


def _accept(listener: socket.socket, lock: IO[str]) -> None:
    children: set[int] = set()
    last = time.monotonic()
    while True:
        children -= _reaped(children)
        try:
            conn, _ = listener.accept()
        except TimeoutError:
            if not children and time.monotonic() - last > IDLE_SECONDS:
                return
            continue
        last = time.monotonic()
        with conn:
            pid = _fork_job(conn, listener, lock)
        if pid is None:
            return  # its launcher runs the job; the next one starts a fresh server
        if pid:
            children.add(pid)


def _fork_job(conn: socket.socket, listener: socket.socket, lock: IO[str]) -> int | None:
    """Fork the process of the job that `conn` sends: its pid; 0 for a request that failed (its
    launcher runs the job); None where forking is no longer safe."""
    fds: list[int] = []
    try:
        header, fds = _header(conn)
        request = pickle.loads(_receive(conn, int.from_bytes(header, "big")) or b"")
        if not _warm(request["target"]):
            return None
        pid = os.fork()
        if pid == 0:  # the job process: it never returns into the server's loop
            try:
                listener.close()
                lock.close()
                _job(conn, fds, request)
            finally:
                os._exit(1)
        return pid
    except Exception as err:
        print(f"job server: {err!r}", file=sys.stderr, flush=True)
        return 0
    finally:
        for fd in fds:
            os.close(fd)


def _header(conn: socket.socket) -> tuple[bytes, list[int]]:
    conn.settimeout(None)
    header, fds, _, _ = socket.recv_fds(conn, 8, 3)
    return header, fds


def _reaped(children: set[int]) -> set[int]:
    """The children that ended, waited for (so their CPU counts in this process's accounting)."""
    done = set()
    for pid in children:
        ended, _ = os.waitpid(pid, os.WNOHANG)
        if ended:
            done.add(pid)
    return done


def _warm(target: str) -> bool:
    """Import the job's module here, once; False where forking would no longer be safe. A
    module that fails to import is left to the job, whose error names it."""
    with contextlib.suppress(Exception):
        importlib.import_module(target.split(":")[0])
    torch = sys.modules["torch"]
    return threading.active_count() == 1 and not torch.cuda.is_initialized()


def _job(conn: socket.socket, fds: list[int], request: dict[str, Any]) -> NoReturn:
    """In the forked process: become the launcher's job, run it, send the exit status."""
    for target, fd in zip((0, 1, 2), fds, strict=True):
        os.dup2(fd, target)
        os.close(fd)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    sys.path[:] = request["path"]
    tempfile.tempdir = None
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    conn.sendall(STARTED)
    threading.Thread(target=_end_with_launcher, args=(conn,), daemon=True).start()
    status = _run_here(request["smk"], request["target"], request["launcher"])
    with contextlib.suppress(OSError):
        conn.sendall(status.to_bytes(STATUS_BYTES, "big", signed=True))
    _exit_with(status)


def _end_with_launcher(conn: socket.socket) -> None:
    """End this job process as soon as its launcher's end closes the connection."""
    with contextlib.suppress(OSError):
        conn.recv(1)
    os._exit(1)


def _end_on_term(signum: int, frame: Any) -> None:
    sys.exit(0)  # through `serve`'s clean-up


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _end_on_term)
    serve(Path(sys.argv[1]))
