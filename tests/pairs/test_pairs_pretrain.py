"""`meddap pretrain-controlnet`: a ControlNet pretrained on the phantom corpus' lesions."""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from diffusers import ControlNetModel
from PIL import Image

from meddap.cli import main
from meddap.common.errors import MeddapError
from meddap.common.hashing import path_sha256
from meddap.diffusion.corpus import corpus_images, generate_corpus
from meddap.diffusion.pipeline import BUILD_RECORD, load_pipeline, verify_build
from meddap.diffusion.prompts import prompt
from meddap.pairs import controlnet as cn
from meddap.pairs.pretrain import (
    BASE_MODEL,
    CONDITIONS,
    DEFAULT_OUTPUT,
    ControlNetPretrainConfig,
    lesion_set,
    pretrain_controlnet,
)

MODEL = Path(__file__).resolve().parents[2] / BASE_MODEL
TINY = ControlNetPretrainConfig(patients=8, render_size=64, steps=6, batch_size=4, threads=1)
WEIGHTS = "diffusion_pytorch_model.safetensors"


def _run(out: Path, config: ControlNetPretrainConfig = TINY, **kwargs: Any) -> Path:
    pretrain_controlnet(base_model=MODEL, output=out, config=config, command="test", **kwargs)
    return out


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*")}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _run(tmp_path_factory.mktemp("controlnet") / "cn")


def test_conditions_are_those_of_the_controlnet_module() -> None:
    assert CONDITIONS == cn.CONDITIONS


def test_lesion_set_pairs_lesion_images_with_their_merged_masks(tmp_path: Path) -> None:
    folders = generate_corpus(tmp_path, patients=8, render_size=64)
    images, labels, conds = lesion_set(folders, 32, "mask")
    lesions = [path for path, label in corpus_images(folders) if label != "normal"]
    assert len(images) == len(labels) == len(conds) == len(lesions) > 0
    assert set(labels) <= {"benign", "malignant"} and images.shape[1:] == (3, 32, 32)
    for path, cond in zip(lesions, conds, strict=True):
        masks = sorted(path.parent.glob(f"{path.stem}_mask*.png"))
        union = np.logical_or.reduce([np.asarray(Image.open(m)) > 127 for m in masks])
        small = Image.fromarray(union).resize((32, 32), Image.Resampling.NEAREST)
        assert torch.equal(cond[0], torch.from_numpy(np.array(small)).float())
    edge = lesion_set(folders[:1], 32, "edge")[2]
    assert edge.shape[1:] == (3, 32, 32) and edge[:, 0].sum() > 0


def test_shortened_pretraining_gives_a_controlnet_for_the_base(built: Path) -> None:
    controlnet = ControlNetModel.from_pretrained(built)
    assert controlnet.config.conditioning_channels == 3
    assert torch.count_nonzero(controlnet.controlnet_mid_block.weight) > 0  # trained from zero
    pipe = load_pipeline(str(MODEL))
    cond = lesion_set(generate_corpus(built.parent / "c", patients=4, render_size=64), 64, "mask")
    pipeline = cn.controlnet_pipeline(pipe, controlnet.float())
    image = cn.generate(pipeline, [prompt("benign")], cond[2][:1], [0], 1, 1.0)[0]
    assert image.shape == (64, 64) and image.dtype == np.uint8


def test_record_lists_every_file_with_its_sha256(built: Path) -> None:
    record = json.loads((built / BUILD_RECORD).read_text())
    on_disk = {name: data for name, data in _files(built).items() if name != BUILD_RECORD}
    assert record["files"] == {n: hashlib.sha256(d).hexdigest() for n, d in on_disk.items()}
    assert WEIGHTS in record["files"] and "config.json" in record["files"]
    assert record["command"] == "test"
    assert record["config"] == json.loads(json.dumps(asdict(TINY)))
    assert record["base_model"]["sha256"] == path_sha256(MODEL)
    assert record["code"]["meddap"] and "git_commit" in record["code"]
    assert set(record["corpus"]["classes"]) <= {"benign", "malignant"}
    assert math.isfinite(record["final_loss"]) and record["final_loss"] > 0
    verify_build(built)


def test_a_changed_file_names_its_own_rebuild_command(built: Path, tmp_path: Path) -> None:
    changed = tmp_path / "changed"
    shutil.copytree(built, changed)
    (changed / "config.json").write_text("{}")
    with pytest.raises(MeddapError, match=r"config.json does not have .*rebuild it with `test`"):
        verify_build(changed)


def test_a_rerun_gives_the_same_bytes(built: Path, tmp_path: Path) -> None:
    again = _run(tmp_path / "cn")
    for name in (WEIGHTS, "config.json"):
        assert (again / name).read_bytes() == (built / name).read_bytes(), name


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"condition": "text"}, "condition 'text' is not one of mask, edge"),
        ({"steps": 0}, "steps must be at least 1"),
        ({"learning_rate": 0.0}, "learning_rate must be positive"),
    ],
)
def test_settings_the_training_cannot_honour_stop(
    tmp_path: Path, change: dict[str, Any], problem: str
) -> None:
    with pytest.raises(MeddapError, match=problem):
        _run(tmp_path / "cn", replace(TINY, **change))
    assert not (tmp_path / "cn").exists()


def test_a_missing_or_overwritten_base_model_stops(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(MeddapError, match=rf"base model {missing} is not a diffusers folder"):
        pretrain_controlnet(base_model=missing, output=tmp_path / "cn", config=TINY)
    with pytest.raises(MeddapError, match="would overwrite its base model"):
        pretrain_controlnet(base_model=MODEL, output=MODEL, config=TINY)


def test_cli_documents_and_runs_pretrain_controlnet(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as done:
        main(["pretrain-controlnet", "-h"])
    assert done.value.code == 0
    usage = capsys.readouterr().out
    options = ("base-model", "output", "condition", "steps", "batch-size", "learning-rate")
    assert all(f"--{o}" in usage for o in (*options, "seed", "patients"))
    out = tmp_path / "cli-cn"
    args = ["pretrain-controlnet", "--base-model", str(MODEL), "--output", str(out)]
    args += ["--condition", "edge", "--steps", "2", "--batch-size", "2", "--patients", "4"]
    main(args)
    assert f"wrote {out}" in capsys.readouterr().out
    record = json.loads((out / BUILD_RECORD).read_text())
    assert record["command"] == "meddap " + " ".join(args)
    assert record["config"]["condition"] == "edge" and record["config"]["steps"] == 2
    ControlNetModel.from_pretrained(out)
    with pytest.raises(SystemExit) as done:
        main([*args[:5], "--condition", "text"])
    assert done.value.code == 2


def test_shipped_controlnet_verifies_and_was_built_with_the_defaults_on_the_shipped_base() -> None:
    shipped = Path(__file__).parents[2] / DEFAULT_OUTPUT
    verify_build(shipped)
    record = json.loads((shipped / BUILD_RECORD).read_text())
    assert record["command"].startswith("meddap pretrain-controlnet")
    defaults = json.loads(json.dumps(asdict(ControlNetPretrainConfig())))
    # built before the `resolution` setting existed, at the base model's native 64 px
    assert defaults.pop("resolution") == 64 and record["config"] == defaults
    assert record["base_model"]["sha256"] == path_sha256(MODEL)
    assert sum(len(data) for data in _files(shipped).values()) < 5e6
    ControlNetModel.from_pretrained(shipped)
