"""A released USLoRA file (diffusers' old attention-processor format) in place of training."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import UNet2DConditionModel
from safetensors.torch import load_file, save_file

from meddap.common.errors import MeddapError
from meddap.common.hashing import file_sha256
from meddap.diffusion.pipeline import load_pipeline
from meddap.lora.released import check_released, import_lora, released_layout
from tests.sd_shaped import NARROW, sd_unet
from tests.snakemake_runner import planned_jobs

REPO = Path(__file__).resolve().parents[2]
BASE = REPO / "resources" / "tiny-sd-phantom"
PROJECTIONS = ("to_q", "to_k", "to_v", "to_out")


def old_format(unet: UNet2DConditionModel, rank: int, attns: tuple[str, ...]) -> dict:
    """Random LoRA tensors named as `unet.save_attn_procs` named them (the authors' file)."""
    g = torch.Generator().manual_seed(0)
    state = {}
    for name in unet.attn_processors:  # ...transformer_blocks.0.attn1.processor
        if name.split(".")[-2] not in attns:
            continue
        attention = unet.get_submodule(name.removesuffix(".processor"))
        for proj in PROJECTIONS:
            layer = getattr(attention, proj)
            layer = layer[0] if proj == "to_out" else layer
            down = torch.randn(rank, layer.in_features, generator=g) * 0.1
            state[f"{name}.{proj}_lora.down.weight"] = down
            state[f"{name}.{proj}_lora.up.weight"] = torch.randn(layer.out_features, rank) * 0.1
    return state


@pytest.fixture(scope="module")
def released(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("released") / "pytorch_lora_weights.safetensors"
    save_file(old_format(load_pipeline(str(BASE)).unet, 4, ("attn1", "attn2")), str(path))
    return path


def test_the_authors_layout_on_sd_v1_has_256_tensors_of_rank_4(tmp_path: Path) -> None:
    sd_layout = sd_unet(replace(NARROW, unet_layers=2))  # SD v1.x's blocks, narrow
    state = old_format(sd_layout, 4, ("attn1", "attn2"))
    assert len(state) == 256  # 16 transformer blocks x attn1, attn2 x q, k, v, out x down, up
    save_file(state, str(tmp_path / "authors.safetensors"))
    assert released_layout(tmp_path / "authors.safetensors") == (4, "attn1_attn2")
    save_file(old_format(sd_layout, 2, ("attn2",)), str(tmp_path / "attn2.safetensors"))
    assert released_layout(tmp_path / "attn2.safetensors") == (2, "attn2")


def test_rank_and_targets_are_checked_against_the_config(released: Path) -> None:
    lora = {"released": str(released), "ranks": [0, 4], "targets": "attn1_attn2"}
    check_released(lora)
    with pytest.raises(MeddapError, match="'lora.targets': 'attn2', but the released adapter"):
        check_released({**lora, "targets": "attn2"})
    with pytest.raises(MeddapError, match=r"'lora.ranks': \[2, 4\] must hold .* rank 4"):
        check_released({**lora, "ranks": [2, 4]})
    with pytest.raises(MeddapError, match="'lora.released': .* does not exist"):
        check_released({**lora, "released": str(released.with_name("missing.safetensors"))})


def test_a_file_that_is_not_an_adapter_stops(tmp_path: Path) -> None:
    (tmp_path / "x.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(MeddapError, match="is not a safetensors file"):
        released_layout(tmp_path / "x.safetensors")
    save_file({"weight": torch.zeros(2, 2)}, str(tmp_path / "y.safetensors"))
    with pytest.raises(MeddapError, match="holds no LoRA down-projection"):
        released_layout(tmp_path / "y.safetensors")


def _image(pipe) -> np.ndarray:  # noqa: ANN001
    generator = torch.Generator().manual_seed(0)
    out = pipe("benign", num_inference_steps=2, generator=generator, output_type="np")
    return out.images[0]


def test_the_import_keeps_every_tensor_and_loads_in_plain_diffusers(
    released: Path, tmp_path: Path
) -> None:
    weights = tmp_path / "r4" / "pytorch_lora_weights.safetensors"
    sha256 = file_sha256(released)
    with pytest.raises(MeddapError, match="changed after the workflow was planned"):
        import_lora(
            released=str(released), weights=str(weights), base_model=str(BASE), rank=4, sha256="0"
        )
    import_lora(
        released=str(released), weights=str(weights), base_model=str(BASE), rank=4, sha256=sha256
    )
    old, new = load_file(str(released)), load_file(str(weights))
    assert len(new) == len(old) == 112  # the tiny UNet's 7 transformer blocks
    key = "down_blocks.0.attentions.0.transformer_blocks.0.attn1"
    assert torch.equal(
        new[f"unet.{key}.to_q.lora.down.weight"], old[f"{key}.processor.to_q_lora.down.weight"]
    )
    assert weights.stat().st_mode & 0o777 == 0o644
    pipe = load_pipeline(str(BASE))
    pipe.set_progress_bar_config(disable=True)
    before = _image(pipe)
    pipe.load_lora_weights(str(weights.parent), weight_name=weights.name)
    assert np.abs(_image(pipe) - before).max() > 1e-3


def test_tensors_the_base_model_cannot_take_stop_the_import(released: Path, tmp_path: Path) -> None:
    state = load_file(str(released))
    state["mid_block.attentions.9.transformer_blocks.0.attn1.processor.to_q_lora.down.weight"] = (
        torch.zeros(4, 64)
    )
    save_file(state, str(tmp_path / "extra.safetensors"))
    weights = tmp_path / "out" / "pytorch_lora_weights.safetensors"
    with pytest.raises(MeddapError, match="took 112 of the 113 tensors"):
        import_lora(
            released=str(tmp_path / "extra.safetensors"),
            weights=str(weights),
            base_model=str(BASE),
            rank=4,
            sha256=file_sha256(tmp_path / "extra.safetensors"),
        )
    assert not weights.exists()


def test_the_plan_imports_the_released_file_instead_of_training(
    released: Path, tmp_path: Path
) -> None:
    lora = {"released": str(released), "ranks": [0, 4], "targets": "attn1_attn2"}
    config = {"lora": lora, "synthesis": {"rank": 4}, "cross_domain": {"targets": []}}
    target = "results/synth/phantom/fold0/r4/none/manifest.parquet"
    plan = planned_jobs(tmp_path, target, config=config)
    assert plan["import_lora"] == 1 and "train_lora" not in plan and "encode_fold" not in plan
