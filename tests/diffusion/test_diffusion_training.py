"""Shared diffusion training: noising targets, epoch order, the resumable step loop, layering."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest
import torch
from diffusers import DDPMScheduler, UNet2DConditionModel

from meddap.common.checkpoint import Checkpoint
from meddap.diffusion import training
from meddap.diffusion.tiny import training_scheduler
from meddap.diffusion.training import EpochOrder, StepLoop, noised_batch, optimizer_update
from tests.conftest import Killed

DIFFUSION = Path(training.__file__).parent
ROWS, BATCH, STEPS, EVERY = 6, 4, 4, 2  # 2 steps per epoch: the loop resumes at an epoch's start
Run = tuple[list[dict[str, Any]], dict[str, torch.Tensor]]  # rows, final weights


def _unet() -> UNet2DConditionModel:
    torch.manual_seed(0)
    return UNet2DConditionModel(
        sample_size=8,
        block_out_channels=(8, 16),
        layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=8,
        attention_head_dim=2,
        norm_num_groups=4,
    )


def _train(checkpoint: Checkpoint | None = None, die_at: int = -1) -> Run:
    """STEPS steps of a fresh tiny UNet on fixed latents; step `die_at` raises `Killed`."""
    g = torch.Generator().manual_seed(1)
    latents, text = torch.randn(ROWS, 4, 8, 8, generator=g), torch.randn(ROWS, 3, 8, generator=g)
    unet, scheduler = _unet(), training_scheduler()
    optimizer = torch.optim.AdamW(unet.parameters(), lr=1e-3)
    noise = torch.Generator().manual_seed(2)
    parts = {"unet": unet, "optimizer": optimizer}
    loop = StepLoop(STEPS, noise, parts, checkpoint, EVERY)
    order = EpochOrder(ROWS, BATCH, seed=3)

    def step(i: int) -> dict[str, Any]:
        if i == die_at:
            raise Killed
        index = order.batch(i)
        loss = training.unet_loss(unet, scheduler, latents[index], text[index], noise)
        return {"epoch": order.epoch(i) + 1, "loss": optimizer_update(loss, optimizer)}

    rows = loop.run(step, "test")
    return rows, unet.state_dict()


def _same(run: Run, other: Run) -> bool:
    (rows, a), (again, b) = run, other
    return rows == again and a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def straight() -> Run:
    return _train()


def test_four_steps_straight_equal_two_then_resume_then_two(
    straight: Run, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    checkpoint = Checkpoint(tmp_path / "checkpoint.pt", "run")
    with pytest.raises(Killed):
        _train(checkpoint, die_at=EVERY)
    saved = torch.load(checkpoint.path, weights_only=True)
    assert saved["step"] == EVERY and len(saved["rows"]) == EVERY
    caplog.set_level("INFO")
    resumed = _train(checkpoint)
    assert f"(step {EVERY})" in caplog.text
    assert _same(resumed, straight)
    rows = resumed[0]
    assert [r["step"] for r in rows] == [1, 2, 3, 4] and [r["epoch"] for r in rows] == [1, 1, 2, 2]


def test_the_checkpoint_is_saved_every_n_steps_but_not_after_the_last(tmp_path: Path) -> None:
    checkpoint = Checkpoint(tmp_path / "checkpoint.pt", "run")
    _train(checkpoint)
    assert torch.load(checkpoint.path, weights_only=True)["step"] == EVERY  # not STEPS


def test_a_checkpoint_of_another_layout_is_discarded(
    straight: Run, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    checkpoint = Checkpoint(tmp_path / "checkpoint.pt", "run")
    checkpoint.save({"weights": {}, "losses": [0.5, 0.4]})  # as an older trainer saved it
    assert _same(_train(checkpoint), straight)
    assert "holds no 'rows'" in caplog.text


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
def test_the_target_follows_the_schedulers_prediction_type(prediction_type: str) -> None:
    scheduler = DDPMScheduler.from_config(
        training_scheduler().config, prediction_type=prediction_type
    )
    latents = torch.randn(3, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    noisy, steps, target = noised_batch(scheduler, latents, torch.Generator().manual_seed(5))
    again = torch.Generator().manual_seed(5)
    noise = torch.randn(latents.shape, generator=again)
    assert torch.equal(steps, torch.randint(0, 1000, (3,), generator=again))
    assert torch.equal(noisy, scheduler.add_noise(latents, noise, steps))
    expected = (
        noise if prediction_type == "epsilon" else scheduler.get_velocity(latents, noise, steps)
    )
    assert torch.equal(target, expected)
    assert not torch.equal(target, latents)


def test_offset_noise_adds_a_constant_per_image_and_channel() -> None:
    latents = torch.zeros(2, 4, 8, 8)
    plain = noised_batch(training_scheduler(), latents, torch.Generator().manual_seed(5))[2]
    offset = noised_batch(training_scheduler(), latents, torch.Generator().manual_seed(5), 0.1)[2]
    shift = offset - plain
    assert torch.allclose(shift, shift[..., :1, :1].expand_as(shift), atol=1e-6)
    assert shift.abs().max() > 0


def test_epoch_order_covers_every_row_once_per_epoch_and_is_seeded() -> None:
    order = EpochOrder(7, 3, seed=11)
    assert order.per_epoch == 3
    for epoch in (0, 1):
        batches = [order.batch(epoch * 3 + i) for i in range(3)]
        assert [len(b) for b in batches] == [3, 3, 1]
        assert sorted(torch.cat(batches).tolist()) == list(range(7))
    assert not torch.equal(torch.cat([order.batch(i) for i in range(3)]), order.batch(3))
    assert torch.equal(EpochOrder(7, 3, seed=11).batch(4), order.batch(4))
    assert not torch.equal(EpochOrder(7, 3, seed=12).batch(0), order.batch(0))


def test_full_epochs_skip_the_leftover_rows() -> None:
    order = EpochOrder(7, 3, seed=11, parts=("vae",), full=True)
    assert order.per_epoch == 2 and order.epoch(2) == 1
    assert all(len(order.batch(i)) == 3 for i in range(4))


def _imports(path: Path) -> set[str]:
    """Every module `path` imports, at its top or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
    return found


def test_no_diffusion_module_imports_a_stage_above_it() -> None:
    above = ("meddap.lora", "meddap.pairs")
    for path in sorted(DIFFUSION.glob("*.py")):
        upward = sorted(m for m in _imports(path) if m.startswith(above))
        assert not upward, f"{path.name} imports {upward}"
