"""The user's `slurm` Snakemake profile: cluster specifics only (partition, account, polling).

Per-rule resources (gpu, mem_mb, runtime, threads) come from the workflow's config, so one
profile serves every meddap grid. `snakemake --profile slurm` finds the written profile in
Snakemake's user config folder (`~/.config/snakemake/slurm` on Linux, honouring XDG_CONFIG_HOME).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from platformdirs import user_config_dir

from meddap.common.atomic import atomic_path
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
    target = (folder or default_dir()) / "config.yaml"
    if target.exists() and not force:
        raise MeddapError(f"{target} exists; pass --force to replace it")
    with atomic_path(target) as tmp:
        tmp.write_text(HEADER + yaml.safe_dump(profile(cluster), sort_keys=False))
    return target
