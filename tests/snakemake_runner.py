"""Run the real workflow in a scratch directory (shared by tests/test_workflow_*.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
CASES = REPO / ".test"  # the tiny configs a person runs by hand (see .test/README.md)


def case_file(case: str) -> Path:
    """`.test/<case>.yaml`, which must exist."""
    path = CASES / f"{case}.yaml"
    assert path.is_file(), f"no test config {path}"
    return path


def case_config(case: str) -> dict:
    """The keys `.test/<case>.yaml` sets over the default config."""
    return yaml.safe_load(case_file(case).read_text())


def snakemake(
    workdir: Path,
    *targets: str,
    case: str | None = None,
    config: dict | None = None,
    extra: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run snakemake on this repo's Snakefile in `workdir`: the default config, then
    `.test/<case>.yaml`, then `config` merged over them (as Snakemake merges --configfiles).

    `env` adds environment variables (e.g. XDG_CONFIG_HOME, where `--profile slurm` is found).
    """
    environ = {**os.environ, **(env or {})}
    cmd = [*command(workdir, *targets, case=case, config=config), *extra]
    return subprocess.run(cmd, capture_output=True, text=True, env=environ)


def command(
    workdir: Path, *targets: str, case: str | None = None, config: dict | None = None
) -> list[str]:
    """The snakemake command line for `targets`; `config` is written beside the run."""
    cmd = [sys.executable, "-m", "snakemake", *targets, "--snakefile", str(REPO / "Snakefile")]
    cmd += ["--directory", str(workdir), "--cores", "2", "--configfile"]
    cmd += [str(REPO / "config" / "config.yaml")]
    if case:
        cmd.append(str(case_file(case)))
    if config:
        override = workdir / "override.yaml"
        override.write_text(yaml.safe_dump(config))
        cmd.append(str(override))
    return cmd


def planned_jobs(
    workdir: Path, *targets: str, case: str | None = None, config: dict | None = None
) -> dict[str, int]:
    """Job counts per rule that a dry run of `targets` plans."""
    run = snakemake(workdir, *targets, case=case, config=config, extra=("-n",))
    assert run.returncode == 0, run.stderr
    if "Nothing to be done" in run.stdout:
        return {}
    table = run.stdout.split("Job stats:")[1].split("\ntotal")[0]
    rows = (line.split() for line in table.splitlines())
    return {r[0]: int(r[1]) for r in rows if len(r) == 2 and r[1].isdigit() and r[0] != "all"}
