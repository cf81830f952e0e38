"""Resumable ControlNet fine-tuning: a killed run resumed ends exactly as an uninterrupted one."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import pandas as pd
import pytest
import torch
from diffusers import StableDiffusionPipeline

from meddap.common.checkpoint import Checkpoint, fingerprint
from meddap.common.settings import ControlNetFit, ControlNetSize, ControlNetTraining
from meddap.diffusion.pipeline import load_pipeline
from meddap.pairs import controlnet as cn
from meddap.pairs.finetune import train_fold_controlnet
from tests.conftest import REPO, Killed, PhantomFold

MODEL = REPO / "resources" / "tiny-sd-phantom"
PRETRAINED = REPO / "resources" / "tiny-controlnet-phantom"
SIZE = 64
# 8 rows in batches of 4: 2 steps per epoch, so the checkpoint of step 3 resumes mid-epoch
SETTINGS = {"steps": 4, "batch_size": 4, "learning_rate": 1e-3}
EVERY = 3
Run = tuple[list[float], dict[str, torch.Tensor]]  # a run's losses and final weights


@pytest.fixture(scope="module")
def pipe() -> StableDiffusionPipeline:
    return load_pipeline(str(MODEL))


@pytest.fixture(scope="module")
def data(pipe: StableDiffusionPipeline) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """8 rows: random latents, one prompt's embedding, random binary conditioning images."""
    g = torch.Generator().manual_seed(3)
    latents = torch.randn(8, 4, SIZE // 4, SIZE // 4, generator=g)
    with torch.no_grad():
        text = pipe.encode_prompt(["benign"], "cpu", 1, False)[0]
    conds = (torch.rand(8, 1, SIZE, SIZE, generator=g) > 0.7).float().expand(-1, 3, -1, -1)
    return latents, text.expand(8, -1, -1), conds


@contextmanager
def counted(monkeypatch: pytest.MonkeyPatch, die_at: int = 0) -> Iterator[list[int]]:
    """Count the training steps started inside; step `die_at` (if set) raises `Killed`."""
    loss, calls = cn.controlnet_loss, []

    def step(*args: object) -> torch.Tensor:
        calls.append(1)
        if len(calls) == die_at:
            raise Killed
        return loss(*args)

    with monkeypatch.context() as patch:
        patch.setattr(cn, "controlnet_loss", step)
        yield calls


def _train(
    pipe: StableDiffusionPipeline,
    data: tuple[torch.Tensor, ...],
    checkpoint: Checkpoint | None = None,
    seed: int = 0,
) -> Run:
    """Losses and weights of a fresh ControlNet trained on `data`."""
    net = cn.build_controlnet(pipe.unet, pipe.vae_scale_factor, seed=0)
    losses = cn.train_controlnet(
        pipe, net, *data, **SETTINGS, seed=seed, checkpoint=checkpoint, every=EVERY
    )
    return losses, net.state_dict()


@pytest.fixture(scope="module")
def plain(pipe: StableDiffusionPipeline, data: tuple[torch.Tensor, ...]) -> Run:
    """The uninterrupted run, without checkpoints (as pretraining runs)."""
    return _train(pipe, data)


@pytest.fixture(scope="module")
def train(pipe: StableDiffusionPipeline, data: tuple[torch.Tensor, ...]) -> Callable[..., Run]:
    """`_train` on the shared pipeline and data."""
    return partial(_train, pipe, data)


def _same(run: Run, other: Run) -> bool:
    """The same losses and the same weights, bit for bit."""
    (losses, a), (again, b) = run, other
    return losses == again and a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_killed_run_resumed_ends_as_an_uninterrupted_one(
    train: Callable[..., Run], plain: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    checkpoint = Checkpoint(tmp_path / "checkpoint.pt", "run")
    with counted(monkeypatch, die_at=EVERY + 1), pytest.raises(Killed):
        train(checkpoint)
    assert [row["loss"] for row in checkpoint.load()["rows"]] == plain[0][:EVERY]
    with counted(monkeypatch) as calls:
        resumed = train(checkpoint)
    assert len(calls) == SETTINGS["steps"] - EVERY  # the done steps are skipped
    assert _same(resumed, plain)


def test_a_checkpoint_of_another_run_is_discarded(
    train: Callable[..., Run], plain: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "checkpoint.pt"
    with counted(monkeypatch, die_at=EVERY + 1), pytest.raises(Killed):
        train(Checkpoint(path, fingerprint(seed=1)), seed=1)
    assert path.is_file()
    with counted(monkeypatch) as calls:
        fresh = train(Checkpoint(path, fingerprint(seed=0)))
    assert len(calls) == SETTINGS["steps"]
    assert _same(fresh, plain)


def test_checkpoint_every_must_be_positive(
    pipe: StableDiffusionPipeline, data: tuple[torch.Tensor, ...], tmp_path: Path
) -> None:
    net = cn.build_controlnet(pipe.unet, pipe.vae_scale_factor)
    with pytest.raises(cn.MeddapError, match="checkpoint_every=0 must be positive"):
        cn.train_controlnet(
            pipe, net, *data, **SETTINGS, seed=0, checkpoint=Checkpoint(tmp_path / "c.pt", "r")
        )


def _job(fold: PhantomFold, out: Path, learning_rate: float) -> tuple[bytes, pd.DataFrame]:
    """Fine-tune fold 0's mask ControlNet into `out`; the weights' bytes and the train log."""
    training = ControlNetTraining(
        steps=3, batch_size=4, learning_rate=learning_rate, flip=False, checkpoint_every=2
    )
    train_fold_controlnet(
        base_model=str(MODEL),
        manifest=str(fold.manifest),
        splits=str(fold.splits),
        attributes=str(out / "unused.parquet"),  # class prompts read no attribute table
        model=str(out / "model"),
        train_log=str(out / "train_log.parquet"),
        fold=0,
        condition="mask",
        pretrained=str(PRETRAINED),
        controlnet=ControlNetFit(
            prompts="class", training=training, sampling=ControlNetSize(resolution=64)
        ),
        seed=7,
    )
    weights = (out / "model" / "diffusion_pytorch_model.safetensors").read_bytes()
    return weights, pd.read_parquet(out / "train_log.parquet")


def test_the_fold_job_resumes_its_own_checkpoint_only_and_removes_it(
    phantom_fold: PhantomFold, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clean, resumed = tmp_path / "clean", tmp_path / "resumed"
    weights, train_log = _job(phantom_fold, clean, 1e-4)
    assert not (clean / "checkpoint.pt").exists()
    checkpoint = resumed / "checkpoint.pt"
    for learning_rate in (1e-3, 1e-4):  # the second try discards the first's checkpoint
        with counted(monkeypatch, die_at=3), pytest.raises(Killed):
            _job(phantom_fold, resumed, learning_rate)
        assert checkpoint.is_file() and not (resumed / "model").exists()
    with counted(monkeypatch) as calls:
        assert _job(phantom_fold, resumed, 1e-4)[0] == weights
    assert len(calls) == 1
    pd.testing.assert_frame_equal(pd.read_parquet(resumed / "train_log.parquet"), train_log)
    assert not checkpoint.exists()
