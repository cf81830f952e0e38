"""The shared training loop, checkpoint file and runtime helpers, on a tiny model and task."""

from __future__ import annotations

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
from meddap.common.settings import Budget
from meddap.common.training import (
    Batch,
    Validation,
    check_budget,
    chunked,
    fit,
    learning_rate_factor,
    shuffled_batches,
)
from tests.conftest import Killed

BUDGET = Budget(steps=20, eval_every=5, warmup=2, patience=None)  # 4 validations


class ToyTask:
    """Two-class logistic regression with a noise augmentation and dropout (both global RNG)."""

    def __init__(self, scores: list[float] | None = None, n: int = 25) -> None:
        g = torch.Generator().manual_seed(0)
        self.x, self.y = torch.randn(n, 5, generator=g), torch.randint(0, 2, (n,), generator=g)
        self.vx, self.vy = torch.randn(8, 5, generator=g), torch.randint(0, 2, (8,), generator=g)
        self.scripted = scores  # val scores per validation instead of the real ones
        self.seen: list[dict[str, torch.Tensor]] = []
        self.passes = 0

    def indices(self, order: torch.Generator) -> list[torch.Tensor]:
        self.passes += 1
        return shuffled_batches(len(self.y), 4, order)

    def batch(self, index: torch.Tensor, order: torch.Generator) -> Batch:
        return Batch(self.x[index] + 0.1 * torch.randn(len(index), 5), self.y[index])

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


def _fit(
    task: ToyTask, checkpoint: Checkpoint | None = None, budget: Budget = BUDGET
) -> training.Fit:
    model = _model()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    return fit(model, optimizer, task, budget=budget, seed=11, checkpoint=checkpoint)


def _bytes(result: training.Fit) -> bytes:
    return save({**result.state, "outputs": result.outputs})


def test_best_update_is_the_highest_score_and_ties_go_to_the_earlier_update() -> None:
    task = ToyTask(scores=[0.5, 0.75, 0.75, 0.625])
    result = _fit(task)
    assert result.update == 10 and result.updates == 20 and not result.stopped_early
    assert [h["update"] for h in result.history] == [5, 10, 15, 20]
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
    assert [len(b) for b in chunked(torch.arange(8), 4)] == [4, 4]


def test_training_sets_of_different_sizes_get_the_same_updates() -> None:
    small, large = ToyTask(n=9), ToyTask(n=45)  # 2 and 11 batches per pass
    for task in (small, large):
        result = _fit(task)
        assert result.updates == BUDGET.steps
        assert [h["update"] for h in result.history] == [5, 10, 15, 20]
    assert (small.passes, large.passes) == (10, 2)  # passes follow from the budget
    assert _fit(ToyTask(n=9)).record(BUDGET)["passes"] == 10


def test_learning_rate_warms_up_then_follows_a_cosine_to_zero() -> None:
    budget = Budget(steps=12, eval_every=3, warmup=2, patience=None)
    factors = [learning_rate_factor(budget, u) for u in range(13)]
    assert factors[:3] == [0.5, 1.0, 1.0]
    assert all(a >= b for a, b in zip(factors[2:], factors[3:], strict=False))
    assert factors[7] == pytest.approx(0.5) and factors[12] == pytest.approx(0.0)
    history = _fit(ToyTask(), budget=budget).history
    # the rate logged at a validation is the one of the next update
    assert [h["lr"] for h in history] == pytest.approx([0.05 * factors[u] for u in (3, 6, 9, 12)])


def test_early_stopping_keeps_the_best_update_after_patience_validations() -> None:
    budget = Budget(steps=40, eval_every=4, warmup=0, patience=3)
    task = ToyTask(scores=[0.5, 0.8, 0.7, 0.8, 0.6, 0.9, 0.9, 0.9, 0.9, 0.9])
    result = _fit(task, budget=budget)
    assert result.stopped_early and result.update == 8 and result.updates == 20
    assert len(task.seen) == 5  # validations at 4, 8 (best), 12, 16, 20: three without gain
    assert all(torch.equal(result.state[k], task.seen[1][k]) for k in result.state)
    assert not result.best_at_end(budget)
    record = result.record(budget)
    assert (record["updates"], record["best_update"], record["stopped_early"]) == (20, 8, True)


def test_a_best_update_in_the_last_tenth_of_the_budget_is_reported(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level("WARNING", logger="meddap.common.training"):
        result = _fit(ToyTask(scores=[0.1, 0.2, 0.3, 0.4]))
    assert result.update == 20 and result.best_at_end(BUDGET)
    assert "last 10 % of the 20-update budget" in caplog.text


@pytest.mark.parametrize("done", [1, 3])
def test_resume_after_validation_k_has_the_bytes_of_an_uninterrupted_run(
    done: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    reference = _fit(ToyTask())
    checkpoint = Checkpoint(tmp_path / "checkpoint.pt", fingerprint(task="toy", seed=11))
    steps, calls = training.train_steps, []

    def dying(*args: object) -> float:
        calls.append(1)
        if len(calls) > done:
            torch.randn(7)  # the dying interval moves the global RNG, as a real one would
            raise Killed
        return steps(*args)

    with monkeypatch.context() as patched, pytest.raises(Killed):
        patched.setattr(training, "train_steps", dying)
        _fit(ToyTask(), checkpoint)
    saved = torch.load(checkpoint.path, weights_only=True)
    assert saved["update"] == 5 * done and saved["pending"]  # killed in the middle of a pass
    torch.manual_seed(1234)  # a new process: another global RNG state
    with caplog.at_level("INFO", logger="meddap.common.training"):
        resumed = _fit(ToyTask(), checkpoint)
    assert f"(update {5 * done})" in caplog.text
    assert _bytes(resumed) == _bytes(reference)
    assert (resumed.update, resumed.history) == (reference.update, reference.history)


def test_a_finished_checkpoint_resumes_without_training(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    checkpoint = Checkpoint(tmp_path / "checkpoint.pt", fingerprint(task="toy"))
    reference = _fit(ToyTask(), checkpoint)  # killed before its outputs were written
    monkeypatch.setattr(training, "train_steps", lambda *args: pytest.fail("trained again"))
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


def test_a_budget_that_cannot_run_stops_naming_the_key() -> None:
    model = _model()
    with pytest.raises(MeddapError, match=r"training\.steps must be at least 1"):
        fit(
            model,
            torch.optim.Adam(model.parameters()),
            ToyTask(),
            budget=Budget(0, 1, 0, None),
            seed=0,
        )
    with pytest.raises(MeddapError, match=r"seg\.training\.eval_every must be between 1 and"):
        check_budget(Budget(10, 11, 0, None), "seg.training")
    with pytest.raises(MeddapError, match=r"seg\.training\.warmup"):
        check_budget(Budget(10, 5, 10, None), "seg.training")
    with pytest.raises(MeddapError, match=r"seg\.training\.patience"):
        check_budget(Budget(10, 5, 0, 0), "seg.training")


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
