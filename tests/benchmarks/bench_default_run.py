"""The default run in a fresh folder: wall time, CPU (jobs' own work, their start-up, Snakemake's
own), peak memory and jobs, per rule.

    python tests/benchmarks/bench_default_run.py [--cores 2] [--configfile F] [--keep DIR]

Runs `snakemake --cores N` with the embedded default (plus `--configfile`, e.g. a `.test/`
config for a quick check of this script) in an empty working directory. Totals come from the
operating system's accounting of the Snakemake process tree, the job server's included (this
process adopts it as a subreaper and waits for it to end after its idle time; a fresh server, as
`MEDDAP_BENCH_RUN` keys it to this run); the split per rule from each job's
provenance record (`process`: start-up = interpreter, imports and Snakemake's script preamble
until the job's function starts, in the launcher and the forked process; own = the rest).
"Snakemake and the rest" is the total minus the jobs': Snakemake's own CPU and the job
server's imports. `MEDDAP_JOB_SERVER=0` in the environment times the run without the server.
Times depend on the machine and its load: compare numbers from one quiet machine.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from meddap.run.ledger import collect

REPO = Path(__file__).resolve().parents[2]
PR_SET_CHILD_SUBREAPER = 36


def run_workflow(work: Path, cores: int, configfile: str | None) -> tuple[float, float, float]:
    """Wall seconds, CPU seconds and peak RSS (MB, largest process) of one Snakemake run."""
    cmd = [sys.executable, "-m", "snakemake", "--cores", str(cores)]
    cmd += ["--snakefile", str(REPO / "Snakefile"), "--directory", str(work)]
    cmd += ["--configfile", configfile] if configfile else []
    env = {**os.environ, "MEDDAP_BENCH_RUN": str(work)}
    ctypes.CDLL(None).prctl(PR_SET_CHILD_SUBREAPER, 1)
    started = time.perf_counter()
    with open(work / "snakemake.log", "w") as log:
        process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
        _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"the run failed; see {work / 'snakemake.log'}")
    cpu, rss = usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024
    for adopted in _adopted():  # the job server, once idle
        cpu, rss = cpu + adopted.ru_utime + adopted.ru_stime, max(rss, adopted.ru_maxrss / 1024)
    return wall, cpu, rss


def _adopted() -> list[resource.struct_rusage]:
    """The accounting of every orphaned descendant this process adopted, waited for."""
    usages = []
    while True:
        try:
            _, _, usage = os.wait4(-1, 0)
        except ChildProcessError:
            return usages
        usages.append(usage)


def per_rule(jobs: pd.DataFrame) -> pd.DataFrame:
    """Jobs, own and start-up CPU minutes, wall minutes and peak RSS per rule, costliest first."""
    jobs = jobs.assign(own_cpu=jobs["cpu_seconds"] - jobs["startup_cpu_seconds"])
    table = jobs.groupby("rule").agg(
        jobs=("rule", "size"),
        own_cpu_min=("own_cpu", "sum"),
        startup_cpu_min=("startup_cpu_seconds", "sum"),
        own_wall_min=("seconds", "sum"),
        startup_wall_min=("startup_seconds", "sum"),
        peak_rss_mb=("max_rss_mb", "max"),
    )
    minutes = [c for c in table.columns if c.endswith("_min")]
    table[minutes] = table[minutes] / 60
    return table.sort_values("own_cpu_min", ascending=False).round(2)


def report(wall: float, cpu: float, rss: float, jobs: pd.DataFrame) -> str:
    """The printed summary."""
    job_cpu = jobs["cpu_seconds"].sum()
    startup = jobs["startup_cpu_seconds"].sum()
    lines = [
        per_rule(jobs).to_string(),
        "",
        f"jobs: {len(jobs)}",
        f"wall: {wall / 60:.1f} min",
        f"CPU: {cpu / 60:.1f} min in all = jobs' own work {(job_cpu - startup) / 60:.1f}"
        f" + jobs' start-up {startup / 60:.1f} + Snakemake and the rest {(cpu - job_cpu) / 60:.1f}",
        f"peak RSS: {max(rss, jobs['max_rss_mb'].max()):.0f} MB (largest process)",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--configfile", help="merged over the default, e.g. .test/full.yaml")
    parser.add_argument("--keep", type=Path, help="run in this (new) folder and keep it")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=args.keep is None)
        configfile = str(Path(args.configfile).resolve()) if args.configfile else None
        wall, cpu, rss = run_workflow(work, args.cores, configfile)
        print(report(wall, cpu, rss, collect(work)))


if __name__ == "__main__":
    main()
