"""USLoRA: parameter counts, the per-fold latent cache and LoRA training with resume."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from diffusers import UNet2DConditionModel
from PIL import Image
from safetensors.torch import load_file

from meddap.common.checkpoint import Checkpoint
from meddap.common.errors import MeddapError
from meddap.common.settings import Lora, LoraCache
from meddap.diffusion.pipeline import load_pipeline
from meddap.diffusion.tiny import build_tiny_sd
from meddap.lora import train as lora_train
from meddap.lora.cache import encode_fold, load_cache
from meddap.lora.params import (
    FULL,
    SD14_UNET_CONFIG,
    count_lora_params,
    largest_rank,
    lora_params_table,
)
from meddap.lora.train import train_lora
from meddap.run.jobs import typed_params

LABELS = ["normal", "benign", "malignant"]
MODES = ["L", "RGB", "RGBA", "LA"]
TRAIN = [f"img{i:02d}" for i in range(6)]
JOB = {"fold": 0, "rank": 4, "seed": 7}
LORA = {
    "ranks": [2, 4],  # a grid axis: the rule's, not the job's
    "targets": "attn2",
    "resolution": 64,
    "flip": True,
    "train_adjective": "none",
    "epochs": 2,
    "batch_size": 2,
    "learning_rate": 1e-3,
    "checkpoint_every": 2,
    "mixed_precision": "auto",
    "gradient_checkpointing": False,
}


def _probe(unet: Any) -> torch.Tensor:
    """UNet output on fixed inputs."""
    g = torch.Generator().manual_seed(0)
    x, text = torch.randn(1, 4, 32, 32, generator=g), torch.randn(1, 77, 32, generator=g)
    with torch.no_grad():
        return unet(x, torch.tensor([500]), encoder_hidden_states=text).sample


def _dataset(root: Path) -> tuple[Path, Path]:
    """Ten images of assorted sizes and modes; fold 0 trains on six, fold 1 on the other four."""
    rng = np.random.default_rng(0)
    rows = []
    for i in range(10):
        path = root / f"img{i}.png"
        gray = Image.fromarray(rng.integers(0, 256, (40 + 3 * i, 52), dtype=np.uint8))
        gray.convert(MODES[i % 4]).save(path)
        rows.append({"id": f"img{i:02d}", "label": LABELS[i % 3], "image_path": str(path)})
    manifest, splits = root / "manifest.parquet", root / "splits.parquet"
    pd.DataFrame(rows).to_parquet(manifest)
    split = [
        {"id": r["id"], "fold": 0, "split": "train" if r["id"] in TRAIN else "val"} for r in rows
    ]
    split += [
        {"id": r["id"], "fold": 1, "split": "test" if r["id"] in TRAIN else "train"} for r in rows
    ]
    pd.DataFrame(split).to_parquet(splits)
    return manifest, splits


@pytest.fixture(scope="module")
def fold0(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A tiny SD, a small dataset with splits and fold 0's latent cache (with flips)."""
    root = tmp_path_factory.mktemp("lora")
    build_tiny_sd(model=str(root / "sd"), seed=0)
    manifest, splits = _dataset(root)
    paths = {
        "root": str(root),
        "base_model": str(root / "sd"),
        "manifest": str(manifest),
        "splits": str(splits),
        "cache": str(root / "cache.safetensors"),
    }
    _encode(paths, paths["cache"])
    return paths


def _encode(paths: dict[str, str], cache: str) -> None:
    encode_fold(
        manifest=paths["manifest"],
        splits=paths["splits"],
        cache=cache,
        base_model=paths["base_model"],
        fold=0,
        encoding=LoraCache.from_config({"lora": LORA}),
    )


def _train(
    fold0: dict[str, str], out: Path, splits: str | None = None, **overrides: Any
) -> dict[str, str]:
    """Train into `out` with the settings above, `overrides` of job arguments or lora keys."""
    outputs = {
        "weights": str(out / "pytorch_lora_weights.safetensors"),
        "train_log": str(out / "train_log.csv"),
        "params_json": str(out / "params.json"),
    }
    job = {k: overrides.pop(k, v) for k, v in JOB.items()}
    train_lora(
        cache=fold0["cache"],
        splits=splits or fold0["splits"],
        base_model=fold0["base_model"],
        **outputs,
        **job,
        lora=Lora.from_config({"lora": {**LORA, **overrides}}),
    )
    return outputs


@pytest.fixture(scope="module")
def trained(fold0: dict[str, str]) -> dict[str, Any]:
    """An uninterrupted run, with the UNet's output on a probe just before the adapter is saved."""
    seen: dict[str, torch.Tensor] = {}
    save = lora_train.save_adapter

    def probing_save(unet: Any, weights: str) -> None:
        seen["probe"] = _probe(unet)
        save(unet, weights)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(lora_train, "save_adapter", probing_save)
        outputs = _train(fold0, Path(fold0["root"]) / "full")
    return {**outputs, **seen}


def test_counts_on_sd14_unet_match_the_paper() -> None:
    for rank in (2, 4, 8):
        counts = count_lora_params(rank, "attn2")
        assert counts["total"] == 859_520_964
        assert counts["trainable"] == 99_456 * rank
        assert counts["fraction"] < 1e-3
    assert count_lora_params(8, "attn1_attn2")["fraction"] > 1e-3


def test_largest_rank_is_the_smallest_attention_width_and_stays_below_the_unet() -> None:
    width = SD14_UNET_CONFIG["block_out_channels"][0]  # inner size of the first attention
    assert largest_rank() == largest_rank(("attn2",)) == width == 320
    counts = count_lora_params(width, "attn1_attn2")
    assert counts["trainable"] == 199_296 * width and counts["fraction"] < 0.1


def test_params_table_flags_attn2_below_a_thousandth() -> None:
    lines = lora_params_table((2, 4, 8)).splitlines()
    flagged = [line.split()[:2] for line in lines if "< 0.1% of UNet parameters" in line]
    assert flagged[:3] == [["attn2", "2"], ["attn2", "4"], ["attn2", "8"]]
    assert any(line.startswith("attn1_attn2") and "1,594,368" in line for line in lines)


def test_cache_holds_only_the_fold_train_split(fold0: dict[str, str]) -> None:
    cache = load_cache(fold0["cache"])
    assert cache.ids == TRAIN
    assert cache.tensors["latents"].shape == (6, 4, 32, 32)
    assert cache.tensors["latents_flip"].shape == (6, 4, 32, 32)
    assert not torch.equal(cache.tensors["latents"], cache.tensors["latents_flip"])
    prompts = [cache.meta["prompts"][i] for i in cache.tensors["prompt_index"]]
    assert prompts[:3] == [
        f"ultrasound image of {w} tumor in the breast" for w in ("no", "benign", "malignant")
    ]
    assert cache.tensors["text_embeddings"].shape == (3, 77, 32)


def test_cache_is_deterministic(fold0: dict[str, str], tmp_path: Path) -> None:
    again = tmp_path / "again.safetensors"
    _encode(fold0, str(again))
    assert again.read_bytes() == Path(fold0["cache"]).read_bytes()


def test_a_training_prompt_over_77_tokens_stops_the_cache(fold0: dict, tmp_path: Path) -> None:
    encoding = LoraCache.from_config({"lora": LORA | {"train_adjective": "-".join(["x"] * 40)}})
    cache = tmp_path / "cache.safetensors"
    with pytest.raises(MeddapError, match=r"^config key 'lora.train_adjective': 'x-x-.* over"):
        encode_fold(**{k: fold0[k] for k in ("manifest", "splits", "base_model")}, cache=str(cache),
                    fold=0, encoding=encoding)  # fmt: skip
    assert not cache.exists()


def test_adapter_is_attn2_only_and_reloads_exactly(fold0: dict[str, str], trained: dict) -> None:
    keys = load_file(trained["weights"]).keys()
    pattern = re.compile(r"unet\..*\.attn2\.(to_q|to_k|to_v|to_out\.0)\.lora\.(down|up)\.weight")
    assert keys and all(pattern.fullmatch(k) for k in keys)
    pipe = load_pipeline(fold0["base_model"])
    base = _probe(pipe.unet)
    pipe.load_lora_weights(trained["weights"])
    reloaded = _probe(pipe.unet)
    assert torch.equal(reloaded, trained["probe"])
    assert not torch.equal(reloaded, base)


def test_outputs_describe_the_run(trained: dict) -> None:
    log = pd.read_csv(trained["train_log"])
    assert list(log.columns) == ["step", "epoch", "loss", "lr"]
    assert log["step"].tolist() == [1, 2, 3, 4, 5, 6]
    assert log["epoch"].tolist() == [1, 1, 1, 2, 2, 2]
    params = json.loads(Path(trained["params_json"]).read_text())
    # 4 cross-attention blocks of width 64, text width 32: r * (3 * 2 * 64 + 2 * 32) each
    assert params["trainable"] == 4 * 4 * (6 * 64 + 2 * 32)
    assert params["fraction"] == params["trainable"] / params["total"]
    assert not (Path(trained["weights"]).parent / "checkpoint.pt").exists()


def _kill_at(monkeypatch: pytest.MonkeyPatch, n: int) -> list[int]:
    """Make the `n`-th optimizer step raise KeyboardInterrupt (a killed job); the calls so far."""
    step = lora_train.optimizer_step
    calls: list[int] = []

    def dies(*args: Any) -> float:
        calls.append(1)
        if len(calls) == n:
            raise KeyboardInterrupt("killed")
        return step(*args)

    monkeypatch.setattr(lora_train, "optimizer_step", dies)
    return calls


def test_killed_run_resumes_to_the_same_adapter(
    fold0: dict[str, str], trained: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    step = lora_train.optimizer_step
    calls = _kill_at(monkeypatch, 5)
    with pytest.raises(KeyboardInterrupt):
        _train(fold0, tmp_path)
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=True)["step"] == 4
    assert not (tmp_path / "pytorch_lora_weights.safetensors").exists()
    calls.clear()
    monkeypatch.setattr(lora_train, "optimizer_step", lambda *a: calls.append(1) or step(*a))
    outputs = _train(fold0, tmp_path)
    assert len(calls) == 2
    resumed, full = load_file(outputs["weights"]), load_file(trained["weights"])
    assert resumed.keys() == full.keys()
    assert max((resumed[k] - full[k]).abs().max().item() for k in full) == 0
    log, full_log = pd.read_csv(outputs["train_log"]), pd.read_csv(trained["train_log"])
    assert log["loss"].tolist() == full_log["loss"].tolist()


def test_training_refuses_a_cache_with_non_train_images(
    fold0: dict[str, str], tmp_path: Path
) -> None:
    splits = pd.read_parquet(fold0["splits"])
    splits.loc[(splits["id"] == "img03") & (splits["fold"] == 0), "split"] = "val"
    leaky = tmp_path / "splits.parquet"
    splits.to_parquet(leaky)
    with pytest.raises(MeddapError, match="img03.*validation or test"):
        _train(fold0, tmp_path / "out", splits=str(leaky))
    assert not (tmp_path / "out").exists()


def test_training_refuses_another_folds_cache(fold0: dict[str, str], tmp_path: Path) -> None:
    with pytest.raises(MeddapError, match="fold 0, not 1"):
        _train(fold0, tmp_path, fold=1)


def test_half_precision_needs_a_gpu(fold0: dict[str, str], tmp_path: Path) -> None:
    if torch.cuda.is_available():
        pytest.skip("checks the CPU fallback")
    with pytest.raises(MeddapError, match=r"lora\.mixed_precision: fp16 needs a CUDA GPU"):
        _train(fold0, tmp_path, mixed_precision="fp16")
    assert not list(tmp_path.iterdir())


def test_each_job_gets_its_part_of_the_lora_section_as_settings() -> None:
    """The cache reads only what encodes it: a learning-rate change must not re-encode."""
    encoding, training = (cls.from_config({"lora": LORA}) for cls in (LoraCache, Lora))
    assert set(encoding.params()) == {"resolution", "flip", "train_adjective"}
    assert {"resolution", "ranks"}.isdisjoint(training.params())
    assert typed_params(encode_fold, {"encoding": encoding.params()})["encoding"] == encoding
    assert typed_params(train_lora, {"lora": training.params(), "fold": 0})["lora"] == training
    partial = {k: v for k, v in training.params().items() if k != "checkpoint_every"}
    with pytest.raises(MeddapError, match=r"lora\.checkpoint_every is missing"):
        typed_params(train_lora, {"lora": partial})


def test_checkpoint_of_other_settings_is_not_resumed(
    fold0: dict[str, str], trained: dict, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    stale = Checkpoint(tmp_path / "checkpoint.pt", json.dumps({**JOB, "seed": 8}))
    stale.save({"step": 4})
    with caplog.at_level("INFO"):
        outputs = _train(fold0, tmp_path)
    assert "discarding" in caplog.text and "resumed" not in caplog.text
    assert Path(outputs["weights"]).read_bytes() == Path(trained["weights"]).read_bytes()
    assert not (tmp_path / "checkpoint.pt").exists()


def test_gradient_checkpointing_trains_the_same_adapter(
    fold0: dict[str, str], trained: dict, tmp_path: Path
) -> None:
    outputs = _train(fold0, tmp_path, gradient_checkpointing=True)
    recomputed, full = load_file(outputs["weights"]), load_file(trained["weights"])
    assert all(torch.equal(recomputed[k], full[k]) for k in full)


def test_adapt_unet_trains_only_fp32_lora_weights(fold0: dict[str, str]) -> None:
    unet = load_pipeline(fold0["base_model"], dtype=torch.bfloat16).unet
    lora_train.adapt_unet(unet, rank=2, targets="attn1_attn2", seed=0, checkpointing=True)
    trainable = {n: p for n, p in unet.named_parameters() if p.requires_grad}
    assert trainable and all(
        ".lora_" in n and p.dtype == torch.float32 for n, p in trainable.items()
    )
    assert {re.search(r"\.(attn\d)\.", n)[1] for n in trainable} == {"attn1", "attn2"}
    assert unet.conv_in.weight.dtype == torch.bfloat16 and unet.is_gradient_checkpointing


def _train_full(fold0: dict[str, str], out: Path) -> dict[str, str]:
    """Full fine-tuning (rank "full") into `out`, the UNet folder at out/unet."""
    outputs = {
        "weights": str(out / "unet"),
        "train_log": str(out / "train_log.csv"),
        "params_json": str(out / "params.json"),
    }
    job = {**JOB, "rank": FULL}
    lora = Lora.from_config({"lora": {**LORA, "learning_rate": 1e-4}})
    train_lora(
        cache=fold0["cache"],
        splits=fold0["splits"],
        base_model=fold0["base_model"],
        **outputs,
        **job,
        lora=lora,
    )
    return outputs


@pytest.fixture(scope="module")
def full(fold0: dict[str, str]) -> dict[str, str]:
    return _train_full(fold0, Path(fold0["root"]) / "full-ft")


def test_full_finetuning_trains_every_unet_weight(fold0: dict[str, str], full: dict) -> None:
    base = load_pipeline(fold0["base_model"]).unet
    tuned = UNet2DConditionModel.from_pretrained(full["weights"])
    n = sum(p.numel() for p in base.parameters())
    assert json.loads(Path(full["params_json"]).read_text())["trainable"] == n
    assert json.loads(Path(full["params_json"]).read_text())["fraction"] == 1.0
    changed = [k for k, v in tuned.state_dict().items() if not torch.equal(v, base.state_dict()[k])]
    assert any("attn1" in k for k in changed) and any("resnets" in k for k in changed)
    assert not (Path(full["weights"]).parent / "checkpoint.pt").exists()


def test_killed_full_finetuning_resumes_to_the_same_unet(
    fold0: dict[str, str], full: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    step = lora_train.optimizer_step
    _kill_at(monkeypatch, 3)
    with pytest.raises(KeyboardInterrupt):
        _train_full(fold0, tmp_path)
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=True)["step"] == 2
    monkeypatch.setattr(lora_train, "optimizer_step", step)
    resumed = _train_full(fold0, tmp_path)
    name = "diffusion_pytorch_model.safetensors"
    a, b = load_file(Path(resumed["weights"]) / name), load_file(Path(full["weights"]) / name)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_full_finetuning_counts_the_whole_sd14_unet() -> None:
    assert count_lora_params(FULL, "attn2")["trainable"] == 859_520_964
