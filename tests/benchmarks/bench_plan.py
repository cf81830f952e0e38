"""Seconds to plan the paper grid with a dry run, and the jobs it plans.

    python tests/benchmarks/bench_plan.py [--repeats 3]

`config/paper.yaml` (5 folds x 3 ranks x 10 adjectives x 3 ratios x 3 models) with a fixed
LoRA rank, so that the whole grid is known before any job runs (with `rank: best` a dry run
stops at each fold's rank choice). Runs `snakemake -n` in an empty working directory.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def plan_once(work: Path) -> tuple[float, str]:
    """Wall seconds of one dry run of the paper grid, and its job table."""
    cmd = [sys.executable, "-m", "snakemake", "-n", "--snakefile", str(REPO / "Snakefile")]
    cmd += ["--directory", str(work), "--configfile", str(REPO / "config" / "paper.yaml")]
    cmd.append(str(work / "rank.yaml"))
    started = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(done.stderr[-2000:])
    return seconds, done.stdout.split("Job stats:")[1].split("\n\n")[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "rank.yaml").write_text("synthesis: {rank: 4}\n")
        times = []
        for _ in range(args.repeats):
            seconds, table = plan_once(work)
            times.append(seconds)
    print(table)
    runs = ", ".join(f"{t:.1f}" for t in times)
    print(f"dry run of the paper grid: best {min(times):.1f} s (runs: {runs} s)")


if __name__ == "__main__":
    main()
