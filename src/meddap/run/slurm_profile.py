"""The user's `slurm` Snakemake profile: cluster specifics only (partition, account, polling).

Per-rule resources (gpu, mem_mb, runtime, threads) come from the workflow's config, so one
profile serves every meddap grid. `snakemake --profile slurm` finds the written profile in
Snakemake's user config folder (`~/.config/snakemake/slurm` on Linux, honouring XDG_CONFIG_HOME).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from platformdirs import user_config_dir

from meddap.common.atomic import atomic_path, check_writable
from meddap.common.errors import MeddapError

HEADER = (
    "# Written by `meddap slurm-profile`: cluster specifics only. Per-rule resources\n"
    "# (gpu, mem_mb, runtime, threads) come from meddap's config; see config/README.md.\n"
)


@dataclass(frozen=True)
class Cluster:
    """What differs between clusters."""

    partition: str | None = None
    account: str | None = None
    jobs: int = 100
    retries: int = 2
    status_command: str | None = None
    init_seconds: int | None = None

    def __post_init__(self) -> None:
        """Stop on a setting Snakemake would accept but SLURM or the profile cannot honour."""
        counts = (("--jobs", self.jobs, 1), ("--retries", self.retries, 0))
        for option, value, least in (*counts, ("--init-seconds", self.init_seconds, 1)):
            if value is not None and value < least:
                raise MeddapError(f"slurm-profile {option} must be at least {least}, got {value}")
        for option, name in (("--partition", self.partition), ("--account", self.account)):
            if name is not None and not re.fullmatch(r"[A-Za-z0-9_.,-]+", name):
                raise MeddapError(
                    f"slurm-profile {option} {name!r} is not a SLURM name (expected letters, "
                    "digits, '_', '-', '.', and ',' between several partitions)"
                )


def default_dir() -> Path:
    """Where Snakemake looks up the bare profile name `slurm` for this user."""
    return Path(user_config_dir("snakemake", "snakemake")) / "slurm"


def profile(cluster: Cluster) -> dict[str, Any]:
    """The profile's settings: the slurm executor, resubmission of killed jobs, cluster names."""
    settings: dict[str, Any] = {
        "executor": "slurm",
        "jobs": cluster.jobs,
        "retries": cluster.retries,
        "latency-wait": 60,
        "rerun-incomplete": True,
    }
    defaults = {"slurm_partition": cluster.partition, "slurm_account": cluster.account}
    defaults = {k: v for k, v in defaults.items() if v}
    if defaults:
        settings["default-resources"] = defaults
    if not cluster.account:
        settings["slurm-no-account"] = True
    if cluster.status_command:
        settings["slurm-status-command"] = cluster.status_command
    if cluster.init_seconds:
        settings["slurm-init-seconds-before-status-checks"] = cluster.init_seconds
    return settings


def write_profile(cluster: Cluster, folder: Path | None = None, *, force: bool = False) -> Path:
    """Write `config.yaml` of the profile in `folder` (default: the user's `slurm` profile)."""
    check_writable(folder or default_dir(), "--dest" if folder else "the profile folder")
    folder = folder or default_dir()
    target = folder / "config.yaml"
    if target.exists() and not force:
        raise MeddapError(f"{target} exists; pass --force to replace it")
    with atomic_path(target) as tmp:
        tmp.write_text(HEADER + yaml.safe_dump(profile(cluster), sort_keys=False))
    return target
