"""`meddap pretrain-base`: the phantom corpus, measured captions, the pretraining and its record."""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml

from meddap.cli import main
from meddap.common.errors import MeddapError
from meddap.common.images import open_gray
from meddap.data.phantom import SHIFT_DEFAULTS, generate_phantom
from meddap.diffusion import pretrain
from meddap.diffusion.corpus import (
    ADJECTIVE_RULES,
    SHARDS,
    Corpus,
    corpus_images,
    draw_captions,
    generate_corpus,
    measured_adjectives,
)
from meddap.diffusion.pipeline import BUILD_RECORD, load_pipeline, verify_build
from meddap.diffusion.pretrain_config import DEFAULT_OUTPUT, PretrainConfig
from meddap.diffusion.prompts import ADJECTIVES, prompt
from meddap.lora.train import adapt_unet

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / DEFAULT_OUTPUT
TINY = PretrainConfig(
    patients=8,
    render_size=32,
    image_size=32,
    vae_steps=3,
    unet_steps=3,
    batch_size=2,
    warmup_steps=1,
    vae_channels=(8, 16, 16),
    unet_channels=(32, 32, 32),
    text_width=32,
    checkpoint_every=2,
)


def _run(out: Path, **kwargs: Any) -> Path:
    pretrain.pretrain_base(
        output=out, config=TINY, checkpoint_dir=out.with_name(out.name + "-ckpt"), **kwargs
    )
    return out


def _files(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()
    }


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _run(tmp_path_factory.mktemp("pretrain") / "sd", command="test")


def test_adjectives_follow_the_quartile_rules_on_constructed_images() -> None:
    means = np.linspace(0.2, 0.8, 8)  # image i: mean means[i]
    spread = np.array([0.01, 0.15, 0.05, 0.2, 0.02, 0.1, 0.12, 0.03])  # its std
    checker = np.indices((16, 16)).sum(axis=0) % 2 * 2 - 1.0
    gray = means[:, None, None] + spread[:, None, None] * checker
    found = measured_adjectives(gray)
    expected = {
        "bright": {6, 7},
        "dark": {0, 1},
        "high-contrast": {1, 3},
        "low-contrast": {0, 4},
    }
    for adjective, images in expected.items():
        assert {i for i, own in enumerate(found) if adjective in own} == images, adjective
    assert found[5] == () and found[1] == ("dark", "high-contrast")
    assert set(ADJECTIVE_RULES) <= set(ADJECTIVES)


def test_captions_follow_the_template_and_the_measured_adjectives() -> None:
    corpus = Corpus(torch.zeros(3, 3, 8, 8), ["normal", "benign", "malignant"], [(), ("dark",), ()])
    index, g = torch.tensor([0, 1, 2] * 20), torch.Generator().manual_seed(0)
    assert set(draw_captions(corpus, index, g, adjective_share=0.0, uncond_share=1.0)) == {""}
    always = draw_captions(corpus, index, g, adjective_share=1.0, uncond_share=0.0)
    assert always[:3] == [prompt("normal"), prompt("benign", "dark"), prompt("malignant")]
    mixed = draw_captions(corpus, index, g, adjective_share=0.5, uncond_share=0.1)
    assert set(mixed) == {"", *always[:3], prompt("benign")}


def _dataset_settings() -> dict[str, dict[str, Any]]:
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    return {name: d["phantom"] for name, d in config["datasets"].items() if "phantom" in d}


def _pixel_hashes(paths: list[Path]) -> set[str]:
    hashes = set()
    for path in paths:
        with open_gray(path) as im:
            hashes.add(hashlib.sha256(np.asarray(im).tobytes()).hexdigest())
    return hashes


@pytest.mark.slow
def test_corpus_is_disjoint_from_the_default_datasets(tmp_path: Path) -> None:
    settings = _dataset_settings()
    assert {"phantom", "phantom_external"} <= set(settings)
    for name, phantom in settings.items():
        shift = SHIFT_DEFAULTS | phantom.get("shift", {})
        for shard in SHARDS:
            assert shard.seed != phantom["seed"], name
            assert all(shard.shift[k] != shift[k] for k in SHIFT_DEFAULTS), (name, shard)
    default = settings["phantom"]
    generate_phantom(tmp_path / "phantom", **default)
    folders = generate_corpus(
        tmp_path / "corpus", patients=PretrainConfig().patients, render_size=default["image_size"]
    )
    ours = [path for path, _ in corpus_images(folders)]
    theirs = [p for p in (tmp_path / "phantom").glob("*/*).png")]
    assert len(ours) > 2 * len(theirs) > 0
    assert not {p.read_bytes() for p in ours} & {p.read_bytes() for p in theirs}
    assert not _pixel_hashes(ours) & _pixel_hashes(theirs)


def test_shortened_pretraining_gives_a_loadable_generator(built: Path) -> None:
    pipe = load_pipeline(str(built))
    assert pipe.vae_scale_factor == 4 and pipe.vae.config.scaling_factor != 0.18215
    names = {name for name, _ in pipe.unet.named_modules()}
    assert any(n.endswith("attn1.to_q") for n in names)
    assert any(n.endswith("attn2.to_k") for n in names)
    assert pipe.unet.config.cross_attention_dim == pipe.text_encoder.config.hidden_size
    image = pipe(
        prompt("malignant", "bright"),
        num_inference_steps=2,
        generator=torch.Generator().manual_seed(0),
        output_type="np",
    ).images
    assert image.shape == (1, 32, 32, 3) and np.isfinite(image).all()
    adapt_unet(pipe.unet, rank=2, targets="attn1_attn2", seed=0, checkpointing=False)
    assert any(p.requires_grad for p in pipe.unet.parameters())


def test_record_describes_the_build(built: Path) -> None:
    record = json.loads((built / BUILD_RECORD).read_text())
    assert record["command"] == "test"
    assert record["config"] == json.loads(json.dumps(asdict(TINY)))
    assert record["code"]["meddap"] and "git_commit" in record["code"]
    assert set(record["final_losses"]) == {"vae", "unet"}
    on_disk = {name for name in _files(built) if name != BUILD_RECORD}
    assert set(record["files"]) == on_disk
    assert not (built.with_name("sd-ckpt") / "checkpoint.pt").exists()
    assert (built.with_name("sd-ckpt") / "train_log.csv").is_file()


def test_two_runs_give_the_same_bytes(built: Path, tmp_path: Path) -> None:
    assert _files(_run(tmp_path / "sd", command="test")) == _files(built)


@pytest.mark.parametrize("dies_at", [3, 6])
def test_killed_run_resumes_to_the_same_bytes(
    built: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dies_at: int
) -> None:
    """Killed at step `dies_at` (VAE phase, UNet phase), resumed from the checkpoint before."""
    steps = {"vae": pretrain._vae_step, "unet": pretrain._unet_step}
    calls: list[int] = []
    kill = [dies_at]

    def counted(phase: str) -> Any:
        def step(*args: Any) -> torch.Tensor:
            calls.append(1)
            if len(calls) in kill:
                raise KeyboardInterrupt("killed")
            return steps[phase](*args)

        return step

    monkeypatch.setattr(pretrain, "_vae_step", counted("vae"))
    monkeypatch.setattr(pretrain, "_unet_step", counted("unet"))
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path / "sd", command="test")
    checkpoint = tmp_path / "sd-ckpt" / "checkpoint.pt"
    saved = (dies_at - 1) // TINY.checkpoint_every * TINY.checkpoint_every
    assert torch.load(checkpoint, weights_only=True)["step"] == saved
    assert not (tmp_path / "sd").exists()
    calls.clear()
    kill.clear()
    resumed = _run(tmp_path / "sd", command="test", resume=True)
    assert len(calls) == TINY.vae_steps + TINY.unet_steps - saved
    assert _files(resumed) == _files(built)


def test_a_run_without_resume_starts_afresh(built: Path, tmp_path: Path) -> None:
    stale = tmp_path / "sd-ckpt" / "checkpoint.pt"
    stale.parent.mkdir()
    stale.write_bytes(b"not a checkpoint")
    assert _files(_run(tmp_path / "sd", command="test")) == _files(built)
    assert not stale.exists()


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ("tamper", "does not have the sha256"),
        ("remove", "is missing"),
        ("add", "is not listed"),
    ],
)
def test_a_changed_file_stops_loading_naming_it(
    built: Path, tmp_path: Path, change: str, problem: str
) -> None:
    folder = tmp_path / "sd"
    shutil.copytree(built, folder)
    name = "unet/diffusion_pytorch_model.safetensors"
    if change == "tamper":
        data = bytearray((folder / name).read_bytes())
        data[-1] ^= 1
        (folder / name).write_bytes(bytes(data))
    elif change == "remove":
        (folder / name).unlink()
    else:
        name = "unet/extra.bin"
        (folder / name).write_bytes(b"")
    with pytest.raises(MeddapError, match=rf"{name} {problem}"):
        load_pipeline(str(folder))


def test_shipped_generator_verifies_and_was_built_with_the_defaults() -> None:
    verify_build(SHIPPED)
    record = json.loads((SHIPPED / BUILD_RECORD).read_text())
    assert record["command"].startswith("meddap pretrain-base")
    assert record["config"] == json.loads(json.dumps(asdict(PretrainConfig())))
    size = sum(len(data) for data in _files(SHIPPED).values())
    assert size < 10e6


def test_cli_documents_and_runs_pretrain_base(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as done:
        main(["pretrain-base", "-h"])
    assert done.value.code == 0
    usage = capsys.readouterr().out
    assert all(f"--{o}" in usage for o in ("output", "unet-steps", "resume"))
    out = tmp_path / "cli-sd"
    args = ["pretrain-base", "--output", str(out), "--checkpoint-dir", str(tmp_path / "ckpt")]
    args += ["--patients", "4", "--image-size", "32", "--vae-steps", "1", "--unet-steps", "1"]
    main([*args, "--force", "--batch-size", "2"])
    assert f"wrote {out}" in capsys.readouterr().out
    record = json.loads((out / BUILD_RECORD).read_text())  # --force does not shape the bytes
    assert record["command"] == "meddap " + " ".join([*args, "--batch-size", "2"])
    assert record["config"]["unet_steps"] == 1
    load_pipeline(str(out))


def test_settings_the_training_cannot_honour_stop() -> None:
    with pytest.raises(MeddapError, match="image_size 36"):
        replace(TINY, image_size=36).check()
    with pytest.raises(MeddapError, match="unet_steps"):
        replace(TINY, unet_steps=0).check()
