"""Pool plans, training-set names, the synthetic rows a segmenter takes, and the pool job's
sampling (text-only, resume) on the shipped tiny models."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from meddap.common.errors import MeddapError
from meddap.diffusion.prompts import prompt
from meddap.pairs.controlnet import CONDITIONS
from meddap.pairs.finetune import prompts_of
from meddap.pairs.synthesis import plan, synthesize_pairs
from meddap.trainsets import SEGMENTER, Augmented, PairSet, parse
from meddap.trainsets.pairs import CONDITIONS as TRAINSET_CONDITIONS
from meddap.trainsets.pairs import check_setting, ratio_token
from tests.conftest import REPO, PhantomFold

ROWS = pd.DataFrame(
    {
        "id": ["a", "b", "c", "d"],
        "label": ["benign", "benign", "benign", "malignant"],
        "image_path": ["a.png", "b.png", "c.png", "d.png"],
        "mask_path": ["a_m.png", "b_m.png", "c_m.png", "d_m.png"],
    }
)
PROMPTS = [f"prompt {i}" for i in ROWS["id"]]


def test_conditions_are_the_controlnets() -> None:
    assert TRAINSET_CONDITIONS == CONDITIONS


def test_real_pools_cycle_their_parents_so_every_prefix_holds_each_mask_k_times() -> None:
    table = plan(ROWS, PROMPTS, "mask-real", 3, fold=0, seed=0)
    assert list(table["parent_id"]) == ["a", "b", "c", "d"] * 3
    assert list(table["variant"]) == [0] * 4 + [1] * 4 + [2] * 4
    assert list(table["prompt"][:4]) == PROMPTS and table["seed"].is_unique


def test_clinical_pools_keep_the_class_mix_and_are_deterministic() -> None:
    table = plan(ROWS, PROMPTS, "mask-clinical", 2, fold=1, seed=0)
    assert (table["label"][:4] == "benign").sum() == 3 and (
        table["label"] == "malignant"
    ).sum() == 2
    donors = ROWS.set_index("id").loc[table["attributes_from"], "label"]
    assert list(donors) == list(table["label"])  # the prompt is a lesion's of the same class
    assert table["size"].isin(["small", "medium", "large"]).all()
    assert table.equals(plan(ROWS, PROMPTS, "mask-clinical", 2, fold=1, seed=0))
    other = plan(ROWS, PROMPTS, "mask-clinical", 2, fold=2, seed=0)
    assert not table["seed"].equals(other["seed"])


@pytest.mark.parametrize(
    ("setting", "message"),
    [("edge-clinical", "needs a real image"), ("word-real", "is not {condition}-{source}")],
)
def test_settings_without_a_mask_source_stop(setting: str, message: str) -> None:
    with pytest.raises(MeddapError, match=message):
        plan(ROWS, PROMPTS, setting, 1, fold=0, seed=0)


def test_trainset_names_and_ratios() -> None:
    wanted = parse("edge-real-1to8")
    assert isinstance(wanted, PairSet) and (wanted.setting, wanted.ratio) == ("edge-real", "1:8")
    assert parse("mask-clinical-0to1").real == 0 and not parse("mask-clinical-0to1").includes_real
    assert PairSet.parse("aug-mirror") is None and Augmented.parse("mask-real-1to1") is None
    assert ratio_token("0:1") == "0to1"
    with pytest.raises(MeddapError, match="'2:1' is not real:synthetic"):
        ratio_token("2:1")


def _pool(tmp_path: Path, n: int, setting: str = "mask-real") -> str:
    table = pd.DataFrame(
        {
            "id": [f"s{i}" for i in range(n)],
            "label": "benign",
            "image_path": "x.png",
            "mask_path": "y.png",
            "index": range(n),
            "fold": 0,
            "setting": setting,
        }
    )
    path = tmp_path / "pool.parquet"
    table.to_parquet(path)
    return str(path)


def test_synthetic_rows_take_the_prefix_and_check_fold_setting_and_size(tmp_path: Path) -> None:
    path = _pool(tmp_path, 8)
    train = ROWS.head(3)
    rows = parse("mask-real-1to2").rows(path, 0, train, SEGMENTER)
    assert list(rows["id"]) == [f"s{i}" for i in range(6)]
    assert len(parse("mask-real-0to1").rows(path, 0, train, SEGMENTER)) == 3
    with pytest.raises(MeddapError, match="raise segmentation.pairs.pool"):
        parse("mask-real-1to4").rows(path, 0, train, SEGMENTER)
    with pytest.raises(MeddapError, match="needs 1"):
        parse("mask-real-1to1").rows(path, 1, train, SEGMENTER)
    with pytest.raises(MeddapError, match="needs 'mask-clinical'"):
        parse("mask-clinical-1to1").rows(path, 0, train, SEGMENTER)


def test_attribute_prompts_must_cover_exactly_the_train_lesions(tmp_path: Path) -> None:
    table = ROWS[["id"]].assign(prompt=PROMPTS)
    path = tmp_path / "attributes.parquet"
    table.to_parquet(path)
    assert prompts_of(ROWS, str(path), "attributes") == PROMPTS
    assert prompts_of(ROWS, str(path), "class")[3] == prompt("malignant")
    with pytest.raises(MeddapError, match="'d', which is not a train lesion"):
        prompts_of(ROWS.head(3), str(path), "attributes")
    table.head(2).to_parquet(path)
    with pytest.raises(MeddapError, match="no attributes of train lesion 'c'"):
        prompts_of(ROWS, str(path), "attributes")


@pytest.mark.parametrize("source", ["real", "clinical"])
def test_text_settings_make_the_mask_settings_plan(source: str) -> None:
    assert check_setting(f"text-{source}") == ("text", source)
    wanted = parse(f"text-{source}-1to2")
    assert wanted is not None and (wanted.condition, wanted.ratio) == ("text", "1:2")
    text = plan(ROWS, PROMPTS, f"text-{source}", 2, fold=1, seed=3)
    assert text.equals(plan(ROWS, PROMPTS, f"mask-{source}", 2, fold=1, seed=3))
    assert not text["seed"].equals(plan(ROWS, PROMPTS, "edge-real", 2, fold=1, seed=3)["seed"])


def test_text_settings_do_not_mix_patches() -> None:
    assert parse("mask-real-1to2-mix0.5p4").mixed
    with pytest.raises(MeddapError, match="'text' images follow no mask"):
        parse("text-real-1to2-mix0.5p4")


@pytest.mark.parametrize(
    ("setting", "controlnet", "message"),
    [("text-real", "some/controlnet", "samples without"), ("mask-real", [], "needs its")],
)
def test_the_job_takes_a_controlnet_exactly_when_the_condition_needs_one(
    setting: str, controlnet: object, message: str
) -> None:
    with pytest.raises(MeddapError, match=message):
        synthesize_pairs(
            base_model="", controlnet=controlnet, manifest="", splits="", attributes="",
            images="", masks="", conditions="", synth_manifest="", fold=0, setting=setting,
            pairs_synthesis=None, seed=0,
        )  # fmt: skip


@pytest.fixture
def one_thread() -> Iterator[None]:
    """One torch thread inside, then the previous count, so later tests keep theirs."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.usefixtures("one_thread")
def test_text_pools_sample_the_prompt_alone_with_the_mask_pools_seeds(tmp_path: Path) -> None:
    import numpy as np
    import torch
    from diffusers import StableDiffusionControlNetPipeline

    from meddap.common.settings import Sampling
    from meddap.pairs.controlnet import conditioning_image
    from meddap.pairs.synthesis import _manifest, _pipeline, _render

    base, controlnet = (
        REPO / "resources" / "tiny-sd-phantom",
        REPO / "resources" / "tiny-controlnet-phantom",
    )
    sampling = Sampling("dpm_multistep", 3, 7.5, "", 2, 64, 64)
    batch = plan(ROWS, PROMPTS, "text-real", 1, fold=0, seed=0).head(2)
    masked = plan(ROWS, PROMPTS, "mask-real", 1, fold=0, seed=0).head(2)
    assert batch[["prompt", "seed", "parent_id"]].equals(masked[["prompt", "seed", "parent_id"]])
    lesions = np.zeros((2, 64, 64), bool)
    lesions[0, 10:30, 10:40], lesions[1, 35:60, 20:50] = True, True
    conds = torch.stack([conditioning_image(m, None, "mask", 64) for m in lesions])
    plain = _pipeline(str(base), "", "dpm_multistep")
    assert not isinstance(plain, StableDiffusionControlNetPipeline)
    text = _render(plain, batch, conds, sampling)
    mask = _render(_pipeline(str(base), str(controlnet), "dpm_multistep"), masked, conds, sampling)
    assert [im.shape for im in text] == [(64, 64)] * 2 and text[0].dtype == np.uint8
    gaps = [np.abs(t.astype(int) - m.astype(int)).mean() for t, m in zip(text, mask, strict=True)]
    assert min(gaps) > 1  # the same seeds and prompts, without the mask
    assert np.array_equal(text[0], _render(plain, batch.head(1), conds, sampling)[0])  # own seed
    out = {name: tmp_path / name for name in ("images", "masks", "conditions")}
    assert _manifest(batch, out, 0, "text-real", "")["controlnet_sha256"].isna().all()
    assert (
        _manifest(masked, out, 0, "mask-real", str(controlnet))["controlnet_sha256"].notna().all()
    )


@pytest.mark.usefixtures("one_thread")
def test_a_killed_pool_job_resumes_at_its_first_missing_batch(
    phantom_fold: PhantomFold, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from meddap.common.hashing import file_sha256
    from meddap.common.settings import PairSynthesis
    from meddap.pairs import synthesis

    sampling = {"scheduler": "dpm_multistep", "steps": 2, "guidance_scale": 7.5}
    sampling |= {"negative_prompt": "", "batch_size": 4, "resolution": 64, "image_size": 64}
    how = {"pool": 1, "prompts": "class", "clinical": {"sigma": 4.0, "alpha": 6.0}}
    out = {name: tmp_path / name for name in ("images", "masks", "conditions")}
    rendered: list[int] = []

    def counted(pipe, batch: pd.DataFrame, *args: object) -> list:  # noqa: ANN001
        rendered.append(len(batch))
        return render(pipe, batch, *args)

    render = synthesis._render
    monkeypatch.setattr(synthesis, "_render", counted)

    def run() -> dict[str, str]:
        synthesize_pairs(
            base_model=str(REPO / "resources" / "tiny-sd-phantom"),
            controlnet=str(REPO / "resources" / "tiny-controlnet-phantom"),
            manifest=str(phantom_fold.manifest), splits=str(phantom_fold.splits), attributes="",
            **{name: str(path) for name, path in out.items()},
            synth_manifest=str(tmp_path / "manifest.parquet"), fold=0, setting="mask-real",
            pairs_synthesis=PairSynthesis.from_params(how | {"sampling": sampling}), seed=0,
        )  # fmt: skip
        return {str(p.relative_to(tmp_path)): file_sha256(p) for p in tmp_path.rglob("*.png")}

    first, batches = run(), len(rendered)
    lesions = len(phantom_fold.rows("train").query("label != 'normal'"))
    assert batches == -(-lesions // 4) and len(first) == 3 * lesions
    # The job killed in its last batch: the folders still partial, that batch's images missing.
    for name, path in out.items():
        path.rename(tmp_path / f".{name}.partial")
    last = sorted((tmp_path / ".images.partial").iterdir())[-rendered[-1] :]
    for image in last:
        image.unlink()
    (tmp_path / ".images.partial" / ".000000.tmp99.png").write_bytes(b"half a PNG")
    (tmp_path / "manifest.parquet").unlink()
    assert run() == first and rendered[batches:] == [len(last)]
    assert not list(tmp_path.glob(".*.partial"))


def test_a_negative_prompt_over_the_text_encoders_positions_stops_the_job(
    phantom_fold: PhantomFold, tmp_path: Path
) -> None:
    from meddap.common.settings import PairSynthesis

    sampling = {"scheduler": "dpm_multistep", "steps": 2, "guidance_scale": 7.5}
    sampling |= {"negative_prompt": "blurry, low quality, " * 20, "batch_size": 4}
    how = {"pool": 1, "prompts": "class", "clinical": {"sigma": 4.0, "alpha": 6.0}}
    key = "segmentation.pairs.sampling.negative_prompt"
    with pytest.raises(MeddapError, match=rf"^config key '{key}': .* over the text encoder's 77"):
        synthesize_pairs(
            base_model=str(REPO / "resources" / "tiny-sd-phantom"), controlnet="",
            manifest=str(phantom_fold.manifest), splits=str(phantom_fold.splits), attributes="",
            images=str(tmp_path / "images"), masks=str(tmp_path / "masks"),
            conditions=str(tmp_path / "conditions"), synth_manifest=str(tmp_path / "m.parquet"),
            fold=0, setting="text-real", seed=0, pairs_synthesis=PairSynthesis.from_params(
                how | {"sampling": sampling | {"resolution": 64, "image_size": 64}}
            ),
        )  # fmt: skip
    assert list(tmp_path.iterdir()) == []
