"""Planning-time checks of the diffusion models: resolutions and ControlNet/base-model fit."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml

from meddap.common.errors import MeddapError
from meddap.diffusion.compat import (
    check_controlnet,
    check_models,
    check_resolutions,
    vae_factor,
)

REPO = Path(__file__).resolve().parents[2]
BASE = REPO / "resources" / "tiny-sd-phantom"
CONTROLNET = REPO / "resources" / "tiny-controlnet-phantom"
CONFIG = yaml.safe_load((REPO / "config" / "config.yaml").read_text())


def _controlnet(tmp_path: Path, **changes: object) -> Path:
    """A ControlNet folder holding the shipped one's config.json with `changes` (no weights)."""
    config = json.loads((CONTROLNET / "config.json").read_text())
    folder = tmp_path / "controlnet"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({**config, **changes}))
    return folder


def test_the_shipped_controlnet_fits_the_shipped_base_model() -> None:
    assert vae_factor(BASE) == 4
    check_controlnet(CONTROLNET, BASE, "segmentation.pairs.controlnet.mask")
    check_models(CONFIG, str(BASE), {"mask": str(CONTROLNET)})


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("in_channels", 8),
        ("block_out_channels", [32, 64, 64]),
        ("layers_per_block", 2),
        ("down_block_types", ["CrossAttnDownBlock2D", "DownBlock2D", "DownBlock2D"]),
        ("cross_attention_dim", 768),
    ],
)
def test_each_encoder_mismatch_stops_naming_both_folders(
    tmp_path: Path, key: str, value: object
) -> None:
    folder = _controlnet(tmp_path, **{key: value})
    with pytest.raises(MeddapError) as err:
        check_models(CONFIG, str(BASE), {"mask": str(folder)})
    message = str(err.value)
    assert "segmentation.pairs.controlnet.mask" in message and key in message
    assert str(folder) in message and str(BASE) in message


def test_a_conditioning_embedding_of_another_factor_stops(tmp_path: Path) -> None:
    folder = _controlnet(tmp_path, conditioning_embedding_out_channels=[16, 32, 96, 256])
    with pytest.raises(MeddapError, match="downsamples its conditioning image by 8 .* by 4"):
        check_controlnet(folder, BASE, "segmentation.pairs.controlnet.edge")


def test_a_controlnet_without_a_readable_config_stops(tmp_path: Path) -> None:
    with pytest.raises(MeddapError, match="config.json is not a readable model config"):
        check_controlnet(tmp_path, BASE, "segmentation.pairs.controlnet.mask")


@pytest.mark.parametrize(
    "key",
    [
        "lora.resolution",
        "synthesis.sampling.resolution",
        "segmentation.pairs.sampling.resolution",
    ],
)
def test_a_resolution_off_the_vae_grid_stops_naming_its_key(key: str) -> None:
    config = copy.deepcopy(CONFIG)
    *parents, leaf = key.split(".")
    section = config
    for part in parents:
        section = section[part]
    section[leaf] = 66  # a multiple of 2, not of the VAE factor 4
    with pytest.raises(MeddapError, match=f"'{key}': 66 px is not a multiple of 4"):
        check_resolutions(config, BASE)
    section[leaf] = 96  # not the native 64 px, but on the grid: allowed
    check_resolutions(config, BASE)


def test_hub_ids_and_unbuilt_models_are_left_to_the_jobs(tmp_path: Path) -> None:
    folder = _controlnet(tmp_path, cross_attention_dim=768)
    check_models(CONFIG, "CompVis/stable-diffusion-v1-4", {"mask": str(folder)})
    check_models(CONFIG, str(tmp_path / "not-built"), {"mask": str(folder)})
