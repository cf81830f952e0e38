"""`meddap slurm-profile`: the user profile that `snakemake --profile slurm` finds."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from meddap.common.errors import MeddapError
from meddap.run.slurm_profile import Cluster, default_dir, write_profile


def test_the_profile_lands_where_snakemake_looks_up_slurm(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert default_dir() == tmp_path / "snakemake" / "slurm"
    from snakemake.cli import get_profile_dir

    monkeypatch.chdir(tmp_path)  # no ./slurm here: the user folder must answer
    written = write_profile(Cluster(partition="gpu"))
    assert get_profile_dir("slurm") == (written.parent, written)


def test_cluster_specifics_only(tmp_path: Path) -> None:
    path = write_profile(Cluster(partition="gpu", account="lab", retries=3), tmp_path)
    settings = yaml.safe_load(path.read_text())
    assert settings["executor"] == "slurm" and settings["retries"] == 3
    assert settings["default-resources"] == {"slurm_partition": "gpu", "slurm_account": "lab"}
    assert "slurm-no-account" not in settings and "slurm-status-command" not in settings
    assert not {"mem_mb", "gpu", "runtime"} & set(settings["default-resources"])


def test_no_account_and_squeue_polling_for_clusters_without_accounting(tmp_path: Path) -> None:
    cluster = Cluster(status_command="squeue", init_seconds=5)
    settings = yaml.safe_load(write_profile(cluster, tmp_path).read_text())
    assert settings["slurm-no-account"] is True and "default-resources" not in settings
    assert settings["slurm-status-command"] == "squeue"
    assert settings["slurm-init-seconds-before-status-checks"] == 5


def test_an_existing_profile_is_kept_unless_forced(tmp_path: Path) -> None:
    write_profile(Cluster(partition="a"), tmp_path)
    with pytest.raises(MeddapError, match="exists; pass --force"):
        write_profile(Cluster(partition="b"), tmp_path)
    settings = yaml.safe_load(
        write_profile(Cluster(partition="b"), tmp_path, force=True).read_text()
    )
    assert settings["default-resources"]["slurm_partition"] == "b"


def test_the_command_line(tmp_path: Path) -> None:
    args = ["slurm-profile", "--partition", "p1", "--jobs", "7", "--dest", str(tmp_path)]
    done = subprocess.run(
        [sys.executable, "-m", "meddap.cli", *args], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert yaml.safe_load((tmp_path / "config.yaml").read_text())["jobs"] == 7
    again = subprocess.run(
        [sys.executable, "-m", "meddap.cli", *args], capture_output=True, text=True
    )
    assert again.returncode == 1 and again.stderr.startswith("meddap: ")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"jobs": -5}, "slurm-profile --jobs must be at least 1, got -5"),
        ({"retries": -1}, "slurm-profile --retries must be at least 0, got -1"),
        ({"init_seconds": -3}, "slurm-profile --init-seconds must be at least 1, got -3"),
        ({"partition": "gpu\nexecutor: local"}, "slurm-profile --partition 'gpu\\nexecutor"),
        ({"account": ""}, "slurm-profile --account '' is not a SLURM name"),
    ],
)
def test_a_setting_snakemake_would_take_but_slurm_cannot_stops(
    tmp_path: Path, change: dict, message: str
) -> None:
    with pytest.raises(MeddapError) as err:
        write_profile(Cluster(**change), tmp_path)
    assert str(err.value).startswith(message)
    assert not list(tmp_path.iterdir())


def test_a_destination_that_is_a_file_or_cannot_be_written_stops(tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("mine")
    with pytest.raises(MeddapError, match=r"--dest .*taken is a file, not a folder"):
        write_profile(Cluster(), tmp_path / "taken")
    assert (tmp_path / "taken").read_text() == "mine"
    with pytest.raises(
        MeddapError, match=r"--dest /proc/x cannot be written: making a file in /proc"
    ):
        write_profile(Cluster(), Path("/proc/x"))
