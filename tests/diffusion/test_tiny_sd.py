"""Prompts, the generated CLIP tokenizer and the tiny Stable Diffusion."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import CLIPTokenizer

from meddap.common.errors import MeddapError
from meddap.diffusion.pipeline import load_pipeline
from meddap.diffusion.prompts import ADJECTIVES, prompt
from meddap.diffusion.tiny import (
    bpe_merges,
    build_tiny_sd,
    prompt_words,
    write_tokenizer,
)


@pytest.fixture(scope="module")
def tiny_sd(tmp_path_factory: pytest.TempPathFactory) -> Path:
    model = tmp_path_factory.mktemp("tiny") / "tiny-sd"
    build_tiny_sd(model=str(model), seed=0)
    return model


@pytest.mark.parametrize(
    ("label", "adjective", "expected"),
    [
        ("benign", "none", "ultrasound image of benign tumor in the breast"),
        ("malignant", "solarized", "solarized ultrasound image of malignant tumor in the breast"),
        ("normal", "high-contrast", "high-contrast ultrasound image of no tumor in the breast"),
    ],
)
def test_prompt(label: str, adjective: str, expected: str) -> None:
    assert prompt(label, adjective) == expected


@pytest.mark.parametrize(("label", "adjective"), [("cyst", "none"), ("benign", "High Contrast")])
def test_prompt_rejects_bad_input(label: str, adjective: str) -> None:
    with pytest.raises(MeddapError, match="label|adjective"):
        prompt(label, adjective)


def test_bpe_merges_join_each_word() -> None:
    merges = bpe_merges(["tumor", "tumour", "the"])
    joined = {a + b for a, b in merges}
    assert {"tumor</w>", "tumour</w>", "the</w>"} <= joined
    assert len(merges) == len(set(merges))


def test_tokenizer_covers_prompts_and_any_text(tmp_path: Path) -> None:
    write_tokenizer(tmp_path)
    assert (tmp_path / "merges.txt").read_text().splitlines()[0] == "#version: 0.2"
    tok = CLIPTokenizer.from_pretrained(tmp_path)
    assert tok.model_max_length == 77
    for word in prompt_words():
        assert len(tok(word, add_special_tokens=False).input_ids) == 1, word
    for adjective in ADJECTIVES:
        ids = tok(prompt("benign", adjective)).input_ids
        assert ids[0] == tok.bos_token_id and ids[-1] == tok.eos_token_id
    odd = tok("Zebra é 42!", add_special_tokens=False).input_ids
    assert odd and tok.unk_token_id not in odd
    assert tok.decode(odd) == "zebra é 4 2 !"  # CLIP splits digits


def test_tiny_sd_is_small_loadable_and_generates(tiny_sd: Path) -> None:
    pipe = load_pipeline(str(tiny_sd))
    n_unet = sum(p.numel() for p in pipe.unet.parameters())
    assert 1e5 < n_unet < 1.5e6
    assert pipe.text_encoder.config.eos_token_id == pipe.tokenizer.eos_token_id
    assert pipe.text_encoder.config.vocab_size == len(pipe.tokenizer)
    image = pipe(
        prompt("benign"),
        num_inference_steps=2,
        generator=torch.Generator().manual_seed(0),
        output_type="np",
    ).images
    assert image.shape == (1, 64, 64, 3)


def test_tiny_sd_is_deterministic(tiny_sd: Path, tmp_path: Path) -> None:
    weights = "unet/diffusion_pytorch_model.safetensors"
    build_tiny_sd(model=str(tmp_path / "same"), seed=0)
    build_tiny_sd(model=str(tmp_path / "other"), seed=1)
    assert (tmp_path / "same" / weights).read_bytes() == (tiny_sd / weights).read_bytes()
    assert (tmp_path / "other" / weights).read_bytes() != (tiny_sd / weights).read_bytes()


def test_load_pipeline_rejects_folder_without_model(tmp_path: Path) -> None:
    with pytest.raises(MeddapError, match="model_index.json"):
        load_pipeline(str(tmp_path))
