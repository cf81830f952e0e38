"""CLIP's real tokenizer (49,408 tokens, 77 positions) through meddap's prompt code.

The vocabulary comes from the BPE merges that open_clip_torch ships (`tests/sd_shaped.py`);
its ids are checked against open_clip's own tokenizer before anything else relies on them.
Synthesis runs on the SD-shaped model saved with it.
"""

from __future__ import annotations

from itertools import product
from pathlib import Path

import pandas as pd
import pytest
import torch

from meddap.common.errors import MeddapError
from meddap.common.labels import LESION_CLASSES
from meddap.common.settings import Synthesis
from meddap.diffusion.prompts import ADJECTIVES, LABEL_WORDS, check_prompt_lengths, prompt
from meddap.pairs.attributes import BOUNDARY, ECHOGENICITY, attribute_prompt
from meddap.synth.generate import synthesize
from tests.sd_shaped import CLIP_VOCAB, build_sd_shaped, write_clip_tokenizer

open_clip_tokenizer = pytest.importorskip(
    "open_clip.tokenizer", reason="open_clip_torch (the test extra) ships CLIP's vocabulary"
)

MEDDAP_PROMPTS = [prompt(label, adj) for label, adj in product(LABEL_WORDS, ADJECTIVES)] + [
    attribute_prompt(*words) for words in product(LESION_CLASSES, ECHOGENICITY, BOUNDARY)
]
OTHER_TEXTS = ["Hypoechoic mass, irregular margins; BI-RADS 4!", "don't   blur 123", "a " * 100]
LONG = " ".join(["blurry low quality ultrasound image with artifacts"] * 12)  # 86 tokens
SAMPLING = {
    "scheduler": "dpm_multistep",
    "steps": 2,
    "guidance_scale": 7.5,
    "negative_prompt": "",
    "batch_size": 4,
    "resolution": 64,
    "image_size": 32,
}


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    return write_clip_tokenizer(tmp_path_factory.mktemp("clip-tokenizer"))


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The SD-shaped model (real tokenizer) and a fold of 3 train images (ids and labels only)."""
    root = tmp_path_factory.mktemp("clip-synth")
    ids, labels = ["a", "b", "c"], ["benign", "malignant", "normal"]
    pd.DataFrame({"id": ids, "label": labels}).to_parquet(root / "manifest.parquet")
    pd.DataFrame({"id": ids, "fold": 0, "split": "train"}).to_parquet(root / "splits.parquet")
    return {"root": root, "model": build_sd_shaped(root / "sd", clip_vocabulary=True)}


def _synthesize(inputs: dict[str, Path], out: Path, adjective: str = "none", negative: str = ""):
    root = inputs["root"]
    synthesize(
        manifest=str(root / "manifest.parquet"),
        splits=str(root / "splits.parquet"),
        lora=[],
        images=str(out / "images"),
        synth_manifest=str(out / "manifest.parquet"),
        base_model=str(inputs["model"]),
        fold=0,
        rank=0,
        adjective=adjective,
        synthesis=Synthesis.from_params(
            {"pool": 100, "sampling": {**SAMPLING, "negative_prompt": negative}}
        ),
        seed=1,
    )


def test_the_vocabulary_is_clips_with_open_clips_token_ids(tokenizer) -> None:  # noqa: ANN001
    assert len(tokenizer) == CLIP_VOCAB and tokenizer.model_max_length == 77
    assert tokenizer("a photo of a cat").input_ids == [49406, 320, 1125, 539, 320, 2368, 49407]
    reference = open_clip_tokenizer.SimpleTokenizer()
    for text in MEDDAP_PROMPTS + OTHER_TEXTS:
        ids = [reference.sot_token_id, *reference.encode(text), reference.eot_token_id]
        assert tokenizer(text).input_ids == ids, text


def test_every_meddap_prompt_fits_and_pads_to_77_positions(tokenizer) -> None:  # noqa: ANN001
    check_prompt_lengths(tokenizer, MEDDAP_PROMPTS, "meddap's prompts")
    longest = max(len(tokenizer(text).input_ids) for text in MEDDAP_PROMPTS)
    assert 12 <= longest <= 20  # whole words of CLIP's vocabulary, not characters
    padded = tokenizer(MEDDAP_PROMPTS, padding="max_length", max_length=77).input_ids
    assert {len(ids) for ids in padded} == {77} and {ids[-1] for ids in padded} == {49407}


def test_a_prompt_over_77_tokens_stops_naming_its_source(tokenizer) -> None:  # noqa: ANN001
    assert len(tokenizer(LONG).input_ids) == 86
    with pytest.raises(MeddapError, match=r"^config key 'x': 'blurry.* is 86 tokens .* 77; "):
        check_prompt_lengths(tokenizer, ["fine", LONG], "config key 'x'")
    fits = " ".join(LONG.split()[:75])  # 75 words of one token each, with start and end: 77
    check_prompt_lengths(tokenizer, [fits], "config key 'x'")


def test_diffusers_cuts_a_long_negative_prompt_without_a_word(inputs: dict[str, Path]) -> None:
    """Why meddap stops: the pipeline silently encodes only the first 77 tokens."""
    from meddap.diffusion.pipeline import load_pipeline

    pipe = load_pipeline(str(inputs["model"]))
    assert len(pipe.tokenizer) == CLIP_VOCAB
    cut = pipe.tokenizer.decode(pipe.tokenizer(LONG).input_ids[1:76])
    with torch.no_grad():
        _, long_embeds = pipe.encode_prompt("x", "cpu", 1, True, negative_prompt=LONG)
        _, cut_embeds = pipe.encode_prompt("x", "cpu", 1, True, negative_prompt=cut)
    assert long_embeds.shape == (1, 77, pipe.text_encoder.config.hidden_size)
    torch.testing.assert_close(long_embeds, cut_embeds, rtol=0, atol=0)


def test_synthesis_samples_with_clips_tokenizer(inputs: dict[str, Path], tmp_path: Path) -> None:
    _synthesize(inputs, tmp_path, adjective="high-contrast")
    table = pd.read_parquet(tmp_path / "manifest.parquet")
    assert len(table) == 3 and len(list((tmp_path / "images").iterdir())) == 3
    assert table.prompt[0] == "high-contrast ultrasound image of benign tumor in the breast"


@pytest.mark.parametrize(
    ("adjective", "negative", "key"),
    [
        ("none", LONG, "synthesis.sampling.negative_prompt"),
        ("-".join(["bright"] * 80), "", "synthesis.adjectives"),
    ],
)
def test_synthesis_stops_on_a_long_prompt_before_writing(
    inputs: dict[str, Path], tmp_path: Path, adjective: str, negative: str, key: str
) -> None:
    with pytest.raises(MeddapError, match=rf"^config key '{key}': .* over the text encoder's 77"):
        _synthesize(inputs, tmp_path, adjective, negative)
    assert list(tmp_path.iterdir()) == []
