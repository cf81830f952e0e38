"""DSUNet's deep-supervised UNet with discriminators: heads, loss, training, resume, ablation."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from safetensors.torch import load_file

from meddap.common import training
from meddap.common.errors import MeddapError
from meddap.common.settings import Segmentation
from meddap.report.seg_tables import seg_ablation
from meddap.run.config import check_segmenter, validate_config
from meddap.seg.data import Pairs
from meddap.seg.models import build_discriminator, build_segmenter, heads, predict_logits
from meddap.seg.tasks import AdversarialTask, build_task
from tests.conftest import killed_after
from tests.seg import test_seg_train
from tests.seg.test_seg_train import OUTPUTS, SETTINGS, _train

data = test_seg_train.data  # its fixture: the shared phantom fold and an external set

REPO = Path(__file__).resolve().parents[2]
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
OUT = {"parquet": "parquet", "csv": "csv", "markdown": "md"}
CHANNELS = [4, 4, 8, 8, 8]
SMALL = {"channels": CHANNELS}
HOW = Segmentation.from_params({**SETTINGS, "channels": CHANNELS})


def _pairs(n: int = 6) -> Pairs:
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(n, 1, 32, 32, generator=generator)
    masks = torch.zeros(n, 1, 32, 32)
    masks[:, :, 8:20, 10:24] = 1
    return Pairs([str(k) for k in range(n)], ["benign"] * n, images, masks)


def _task(model: str) -> tuple[torch.nn.Module, AdversarialTask]:
    torch.manual_seed(0)
    net = build_segmenter(model, CHANNELS)
    return net, build_task(model, _pairs(), _pairs(4), HOW, None, torch.device("cpu"))


def test_four_heads_in_training_and_the_main_one_in_eval() -> None:
    net, _ = _task("dsunet-s4-adv")
    images = torch.rand(2, 1, 32, 32)
    net.train()
    trained = heads(net(images))
    assert len(trained) == 4 and all(h.shape == (2, 1, 32, 32) for h in trained)
    net.eval()
    with torch.no_grad():
        (main,) = heads(net(images))
    assert torch.allclose(main, trained[0], atol=1e-6)  # instance norm: train = eval
    assert predict_logits(net, images, 2).shape == (2, 1, 32, 32)


def test_discriminators_have_kernels_7_5_4_4_4_and_one_per_stage_unshared() -> None:
    discriminator = build_discriminator(CHANNELS)
    convs = [m for m in discriminator.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.kernel_size for c in convs] == [(7, 7), (5, 5), (4, 4), (4, 4), (4, 4)]
    assert discriminator(torch.rand(3, 1, 32, 32)).shape == (3, 1)
    for model, count in [("dsunet-s3-adv", 3), ("dsunet-s4", 0)]:
        _, task = _task(model)
        assert len(task.discriminators) == count
    pointers = {p.data_ptr() for p in _task("dsunet-s4-adv")[1].discriminators.parameters()}
    assert len(pointers) == 4 * len(list(discriminator.parameters()))


def test_the_stage_count_and_the_adversarial_term_change_the_loss() -> None:
    images, masks = _pairs().images[:2], _pairs().masks[:2]
    losses = {}
    for model in ("dsunet-s1", "dsunet-s4", "dsunet-s4-adv"):
        net, task = _task(model)
        net.train()
        losses[model] = task.loss(net(images), masks).item()
    assert losses["dsunet-s1"] < losses["dsunet-s4"] < losses["dsunet-s4-adv"]


def test_discriminators_train_after_every_generator_step() -> None:
    net, task = _task("dsunet-s2-adv")
    before = {k: v.clone() for k, v in task.state_dict()["discriminators"].items()}
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    loop = training.constant_loop(net, optimizer, task, torch.Generator().manual_seed(0))
    training.train_steps(loop, 2)
    after = task.state_dict()
    assert all(not torch.equal(before[k], v) for k, v in after["discriminators"].items())
    assert after["optimizer"]["state"]  # Adam moments of every discriminator weight
    assert _task("dsunet-s2")[1].state_dict()["optimizer"] is None


@pytest.fixture(scope="module")
def adversarial_run(data: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dsunet-s4-adv")
    _train(data, out, model="dsunet-s4-adv", external=[], settings=SMALL)
    return out


def test_the_adversarial_term_changes_the_trained_weights(
    adversarial_run: Path, data: dict[str, str], tmp_path: Path
) -> None:
    metrics = _train(data, tmp_path, model="dsunet-s4", external=[], settings=SMALL)
    assert metrics["model"] == "dsunet-s4" and len(metrics["history"]) == 2
    adversarial = load_file(adversarial_run / "model.safetensors")
    plain = load_file(tmp_path / "model.safetensors")
    assert adversarial.keys() == plain.keys()
    assert not all(torch.equal(adversarial[k], plain[k]) for k in plain)


def test_a_killed_adversarial_run_resumes_with_the_bytes_of_an_uninterrupted_one(
    adversarial_run: Path, data: dict[str, str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    job = {"model": "dsunet-s4-adv", "external": [], "settings": SMALL}
    with killed_after(1):
        _train(data, tmp_path, **job)
    saved = torch.load(tmp_path / "checkpoint.pt", weights_only=True)["task"]
    assert len(saved["discriminators"]) > 0 and saved["optimizer"]["state"]
    with caplog.at_level("INFO"):
        _train(data, tmp_path, **job)
    assert "checkpoint.pt (update 2)" in caplog.text
    for name in OUTPUTS:
        assert (tmp_path / name).read_bytes() == (adversarial_run / name).read_bytes(), name


@pytest.mark.parametrize("name", ["dsunet-s5", "dsunet-s0-adv", "dsunet", "dsunet-s4-gan"])
def test_an_unknown_name_stops_naming_the_key_and_the_grammar(name: str) -> None:
    sentence = rf"'{name}' is not one of the models of config key 'segmentation.models' \(unet"
    with pytest.raises(MeddapError, match=sentence + r".*dsunet-s<stages 1-4>\[-adv\]\)$"):
        build_segmenter(name, CHANNELS)
    with pytest.raises(MeddapError, match="target segmenter " + sentence):
        check_segmenter(yaml.safe_load((REPO / "config" / "config.yaml").read_text()), name, "real")
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["segmentation"]["models"] = ["unet", name]
    with pytest.raises(MeddapError, match="'segmentation.models.1'"):
        validate_config(config, SCHEMA)


def _section(value: float) -> dict:
    names = ("dice", "precision", "recall", "iou", "hd95", "assd")
    return {m: {"mean": value * (10 if m in ("hd95", "assd") else 1)} for m in names}


def test_the_ablation_table_has_a_row_per_real_trained_dsunet(tmp_path: Path) -> None:
    dice = {"dsunet-s4-adv": [0.8, 0.9], "dsunet-s1-adv": [0.6, 0.7], "dsunet-s4": [0.75, 0.85]}
    runs = [(m, "real", f, d) for m, values in dice.items() for f, d in enumerate(values)]
    runs += [("unet", "real", 0, 0.5), ("dsunet-s4-adv", "aug-mirror", 0, 0.1)]  # not rows
    paths = []
    for model, trainset, fold, value in runs:
        path = tmp_path / f"{model}_{trainset}_{fold}.json"
        record = {"model": model, "trainset": trainset, "fold": fold, "test": _section(value)}
        record |= {"updates": 1200, "best_update": 800}
        path.write_text(json.dumps(record | {"external": {"ext": _section(0.0)}}))
        paths.append(str(path))
    out = {k: str(tmp_path / f"seg_ablation.{e}") for k, e in OUT.items()}
    seg_ablation(metrics=paths, **out, dataset="phantom", image_size=64)
    table = pd.read_parquet(out["parquet"])
    assert list(table.model) == ["dsunet-s1-adv", "dsunet-s4", "dsunet-s4-adv"]
    assert list(zip(table.stages, table.adversarial, strict=True)) == [
        (1, True),
        (4, False),
        (4, True),
    ]
    best = table.iloc[2]
    assert best.dice == "85.00 ± 7.07" and best.precision == best.recall == best.iou == best.dice
    assert best.hd95 == "8.500 ± 0.707" and best.n_folds == 2 and best.folds == "0;1"
    assert len(best.sources.split(";")) == 2
    markdown = Path(out["markdown"]).read_text()
    assert "pixels at 64 px" in markdown and "| dsunet-s4-adv | 4 | True | 2 |" in markdown
    with pytest.raises(MeddapError, match="needs a real-trained dsunet"):
        seg_ablation(metrics=paths[-2:], **out, dataset="phantom", image_size=64)
