"""The `meddap` command: output folders checked before training, the last-resort handler."""

from __future__ import annotations

from pathlib import Path

import pytest

from meddap.cli import main

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def no_training(monkeypatch: pytest.MonkeyPatch) -> None:
    """Training that starts is a failure here: each check must stop before it."""
    import meddap.diffusion.pretrain
    import meddap.pairs.pretrain

    def trains(**_: object) -> None:
        raise AssertionError("training started")

    monkeypatch.setattr(meddap.diffusion.pretrain, "pretrain_base", trains)
    monkeypatch.setattr(meddap.pairs.pretrain, "pretrain_controlnet", trains)


def _stop(*argv: str) -> str:
    with pytest.raises(SystemExit) as stop:
        main(list(argv))
    return str(stop.value)


@pytest.mark.parametrize("command", ["pretrain-base", "pretrain-controlnet"])
def test_an_output_that_is_a_file_is_kept_and_named(tmp_path: Path, command: str) -> None:
    mine = tmp_path / "notes.txt"
    mine.write_text("mine")
    message = _stop(command, "--output", str(mine))
    assert message == f"meddap: --output {mine} is a file; expected a folder for the model"
    assert mine.read_text() == "mine"


@pytest.mark.parametrize(
    ("command", "shipped"),
    [
        ("pretrain-base", "resources/tiny-sd-phantom"),
        ("pretrain-controlnet", "resources/tiny-controlnet-phantom"),
    ],
)
def test_a_shipped_model_is_replaced_only_with_force(
    monkeypatch: pytest.MonkeyPatch, command: str, shipped: str
) -> None:
    monkeypatch.chdir(REPO)  # the default --output is the shipped folder
    assert _stop(command) == f"meddap: --output {shipped} exists; pass --force to replace it"


@pytest.mark.parametrize(
    "argv",
    [
        ["pretrain-base", "--output", "/proc/x/out"],
        ["pretrain-base", "--output", "{tmp}/sd", "--checkpoint-dir", "/proc/x/ckpt"],
        ["pretrain-controlnet", "--output", "/proc/x/out"],
    ],
)
def test_an_unwritable_place_stops_before_training(tmp_path: Path, argv: list[str]) -> None:
    message = _stop(*(a.format(tmp=tmp_path) for a in argv))
    assert "cannot be written: making a file in /proc failed" in message
    assert message.startswith("meddap: --output" if "ckpt" not in argv[-1] else "meddap: --check")


def test_an_unexpected_error_prints_one_sentence_and_logs_the_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import meddap.diffusion.pretrain

    def fails(**_: object) -> None:
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied\nmore detail")

    monkeypatch.setattr(meddap.diffusion.pretrain, "pretrain_base", fails)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    message = _stop("pretrain-base", "--output", str(tmp_path / "sd"))
    head = "meddap: meddap pretrain-base failed unexpectedly (RuntimeError: mat1 and mat2 shapes "
    assert message.startswith(head) and "\n" not in message
    log = Path(message.split("the traceback is in ")[1])
    assert log.is_relative_to(tmp_path / "state") and log.name.startswith("pretrain-base-")
    assert "Traceback (most recent call last)" in log.read_text() and "in fails" in log.read_text()


@pytest.mark.parametrize("rank", ["100000", "321", "0"])
def test_lora_params_refuses_a_rank_the_unet_layers_do_not_allow(
    rank: str, capsys: pytest.CaptureFixture[str]
) -> None:
    message = _stop("lora-params", "--ranks", "8", rank)
    assert message == (
        f"meddap: lora-params --ranks {rank} must be from 1 to 320, the largest rank every "
        "targeted layer of the SD v1.4 UNet allows (its smallest input or output size)"
    )
    assert capsys.readouterr().out == ""
