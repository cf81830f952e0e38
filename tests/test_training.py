"""The shared training loop, checkpoint file and runtime helpers, on a tiny model and task."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save

from meddap.common import training
from meddap.common.checkpoint import Checkpoint, fingerprint
from meddap.common.errors import MeddapError
from meddap.common.runtime import (
    autocast,
    grad_scaler,
    resolve_device,
    resolve_precision,
    restore_rng,
    rng_state,
)
from meddap.common.training import Batch, Validation, fit, shuffled_batches
from tests.conftest import Killed

EPOCHS = 4


class ToyTask:
    """Two-class logistic regression with a noise augmentation and dropout (both global RNG)."""

    def __init__(self, scores: list[float] | None = None) -> None:
        g = torch.Generator().manual_seed(0)
        self.x, self.y = torch.randn(21, 5, generator=g), torch.randint(0, 2, (21,), generator=g)
        self.vx, self.vy = torch.randn(8, 5, generator=g), torch.randint(0, 2, (8,), generator=g)
        self.scripted = scores  # val scores per epoch instead of the real ones
        self.seen: list[dict[str, torch.Tensor]] = []

    def batches(self, order: torch.Generator) -> Iterator[Batch]:
        for index in shuffled_batches(len(self.y), 4, order):
            yield Batch(self.x[index] + 0.1 * torch.randn(len(index), 5), self.y[index])

    def loss(self, output: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(output, targets)

    def validate(self, model: torch.nn.Module) -> Validation:
        model.eval()
        self.seen.append({k: v.clone() for k, v in model.state_dict().items()})
        with torch.no_grad():
            logits = model(self.vx)
        accuracy = float((logits.argmax(1) == self.vy).float().mean())
        if self.scripted is not None:
            accuracy = self.scripted[len(self.seen) - 1]
        return Validation({"val_accuracy": accuracy}, logits.softmax(1))

    def score_key(self, entry: dict[str, float]) -> float:
        return entry["val_accuracy"]


def _model() -> torch.nn.Module:
    torch.manual_seed(3)
    return torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Dropout(0.3), torch.nn.Linear(8, 2))


def _fit(task: ToyTask, checkpoint: Checkpoint | None = None) -> training.Fit:
    model = _model()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    return fit(model, optimizer, task, epochs=EPOCHS, seed=11, checkpoint=checkpoint)


def _bytes(result: training.Fit) -> bytes:
    return save({**result.state, "outputs": result.outputs})


def test_best_epoch_is_the_highest_score_and_ties_go_to_the_earlier_epoch() -> None:
    task = ToyTask(scores=[0.5, 0.75, 0.75, 0.625])
    result = _fit(task)
    assert result.epoch == 2
    assert [h["epoch"] for h in result.history] == [1, 2, 3, 4]
    assert [h["val_accuracy"] for h in result.history] == [0.5, 0.75, 0.75, 0.625]
    assert all(torch.equal(result.state[k], task.seen[1][k]) for k in result.state)
    assert not all(torch.equal(result.state[k], task.seen[2][k]) for k in result.state)


def test_train_loss_is_the_mean_over_examples() -> None:
    history = _fit(ToyTask()).history
    assert all(h["train_loss"] > 0 for h in history)
    assert history[-1]["train_loss"] < history[0]["train_loss"]


def test_last_batch_of_one_joins_the_one_before() -> None:
    batches = shuffled_batches(9, 4, torch.Generator().manual_seed(0))
    assert [len(b) for b in batches] == [4, 5]
    assert sorted(torch.cat(batches).tolist()) == list(range(9))
    assert [len(b) for b in shuffled_batches(1, 4, torch.Generator())] == [1]


@pytest.mark.parametrize("done", [1, 3])
def test_resume_after_epoch_k_has_the_bytes_of_an_uninterrupted_run(
    done: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    reference = _fit(ToyTask())
    checkpoint = Checkpoint(tmp_path / "checkpoint.pt", fingerprint(task="toy", seed=11))
    epoch, calls = training.train_epoch, []

    def dying(*args: object) -> float:
        calls.append(1)
        if len(calls) > done:
            torch.randn(7)  # the dying epoch moves the global RNG, as a real one would
            raise Killed
        return epoch(*args)

    with monkeypatch.context() as patched, pytest.raises(Killed):
        patched.setattr(training, "train_epoch", dying)
        _fit(ToyTask(), checkpoint)
    assert torch.load(checkpoint.path, weights_only=True)["epoch"] == done
    torch.manual_seed(1234)  # a new process: another global RNG state
    with caplog.at_level("INFO", logger="meddap.common.training"):
        resumed = _fit(ToyTask(), checkpoint)
    assert f"(epoch {done})" in caplog.text
    assert _bytes(resumed) == _bytes(reference)
    assert (resumed.epoch, resumed.history) == (reference.epoch, reference.history)


def test_a_finished_checkpoint_resumes_without_training(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    checkpoint = Checkpoint(tmp_path / "checkpoint.pt", fingerprint(task="toy"))
    reference = _fit(ToyTask(), checkpoint)  # killed before its outputs were written
    monkeypatch.setattr(training, "train_epoch", lambda *args: pytest.fail("trained again"))
    again = _fit(ToyTask(), checkpoint)
    assert _bytes(again) == _bytes(reference) and again.history == reference.history


def test_checkpoint_of_another_run_is_discarded(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "checkpoint.pt"
    Checkpoint(path, fingerprint(seed=1)).save({"epoch": 3, "weights": torch.ones(2)})
    assert Checkpoint(path, fingerprint(seed=1)).load()["epoch"] == 3
    with caplog.at_level("WARNING"):
        assert Checkpoint(path, fingerprint(seed=2)).load() is None
    assert "another run" in caplog.text and not path.exists()
    assert [p.name for p in tmp_path.iterdir()] == []  # no temporary file either


def test_loop_ignores_a_stale_checkpoint(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "checkpoint.pt"
    stale = Checkpoint(path, fingerprint(seed=1))
    _fit(ToyTask(), stale)
    with caplog.at_level("INFO"):
        fresh = _fit(ToyTask(), Checkpoint(path, fingerprint(seed=2)))
    assert "discarding" in caplog.text and "resumed" not in caplog.text
    assert _bytes(fresh) == _bytes(_fit(ToyTask()))


def test_unreadable_checkpoint_is_discarded(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "checkpoint.pt"
    path.write_bytes(b"not a checkpoint")
    with caplog.at_level("WARNING"):
        assert Checkpoint(path, "run").load() is None
    assert "cannot be read" in caplog.text and not path.exists()
    Checkpoint(path, "run").remove()  # removing none is fine


def test_fit_needs_an_epoch() -> None:
    model = _model()
    with pytest.raises(ValueError, match="at least 1"):
        fit(model, torch.optim.Adam(model.parameters()), ToyTask(), epochs=0, seed=0)


def test_rng_state_restores_torch_and_named_generators() -> None:
    order = torch.Generator().manual_seed(5)
    state = rng_state({"order": order})
    first = torch.rand(3), torch.rand(3, generator=order)
    torch.manual_seed(99)
    order.manual_seed(99)
    restore_rng(state, {"order": order})
    again = torch.rand(3), torch.rand(3, generator=order)
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))


def test_precision_resolution() -> None:
    cpu = torch.device("cpu")
    assert resolve_precision("auto", "classifier.mixed_precision", cpu) == "no"
    assert resolve_precision("no", "lora.mixed_precision") == "no"
    with pytest.raises(MeddapError, match=r"classifier\.mixed_precision: fp16 needs a CUDA GPU"):
        resolve_precision("fp16", "classifier.mixed_precision", cpu)
    with pytest.raises(MeddapError, match=r"lora\.mixed_precision: 'fp8' is not auto, no"):
        resolve_precision("fp8", "lora.mixed_precision")
    if not torch.cuda.is_available():
        assert resolve_precision("auto", "lora.mixed_precision") == "no"
        with pytest.raises(MeddapError, match=r"lora\.mixed_precision: bf16 needs a CUDA GPU"):
            resolve_precision("bf16", "lora.mixed_precision")
    assert grad_scaler(cpu, "no") is None and grad_scaler(cpu, "bf16") is None
    with autocast(cpu, "no"):
        assert torch.ones(2, 2).matmul(torch.ones(2, 2)).dtype == torch.float32


def test_device_resolution() -> None:
    assert resolve_device("cpu", "classifier.device") == torch.device("cpu")
    with pytest.raises(MeddapError, match=r"classifier\.device: 'tpu' is not auto, cpu or cuda"):
        resolve_device("tpu", "classifier.device")
    if not torch.cuda.is_available():
        assert resolve_device("auto", "classifier.device") == torch.device("cpu")
        with pytest.raises(MeddapError, match=r"classifier\.device is cuda but no CUDA GPU"):
            resolve_device("cuda", "classifier.device")
