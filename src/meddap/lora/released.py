"""A released USLoRA adapter in place of a trained one (config key `lora.released`).

The authors released their USLoRA as `pytorch_lora_weights.safetensors` in diffusers' old
attention-processor format (`unet.save_attn_procs`): keys such as
`down_blocks.0.attentions.0.transformer_blocks.0.attn1.processor.to_q_lora.down.weight`, without
the `unet.` prefix that `load_lora_weights` needs (without it diffusers 0.42 loads nothing and
only warns). `import_lora` loads such a file (or one in today's format) into the base model with
diffusers' own converter, stops unless every tensor was taken, and writes it as the fold's
adapter in the format the workflow's own LoRAs have, so synthesis treats both alike. Its rank and
targets are read from the file's header when the DAG is built and must match `lora.ranks` and
`lora.targets`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from meddap.common.errors import MeddapError

KEY = "lora.released"
DOWN = (".down.weight", ".lora_A.weight", ".lora.down.weight")  # old, PEFT, kohya-style names
PARTS = ("unet.", "text_encoder.")
ADAPTER = "released"


def released_layout(path: str | Path) -> tuple[int, str]:
    """The rank and the `lora.targets` value of the adapter at `path`, from its header alone."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), "pt") as file:
            shapes = {key: file.get_slice(key).get_shape() for key in file.keys()}  # noqa: SIM118
    except (OSError, SafetensorError) as err:
        raise MeddapError(f"config key '{KEY}': {path} is not a safetensors file ({err})") from None
    ranks = {shape[0] for key, shape in shapes.items() if key.endswith(DOWN)}
    if len(ranks) != 1:
        found = "no LoRA down-projection" if not ranks else f"ranks {sorted(ranks)}"
        raise MeddapError(f"config key '{KEY}': {path} holds {found}; expected one LoRA rank")
    targets = "attn1_attn2" if any(".attn1." in key for key in shapes) else "attn2"
    return ranks.pop(), targets


def check_released(lora: dict[str, Any]) -> None:
    """Stop when the released adapter's rank or targets are not the configured ones."""
    path = lora["released"]
    if not path:
        return
    if not Path(path).is_file():
        raise MeddapError(f"config key '{KEY}': {path} does not exist (expected a LoRA file)")
    rank, targets = released_layout(path)
    if targets != lora["targets"]:
        raise MeddapError(
            f"config key 'lora.targets': {lora['targets']!r}, but the released adapter {path} "
            f"adapts {targets!r}"
        )
    if {r for r in lora["ranks"] if r > 0} != {rank}:
        raise MeddapError(
            f"config key 'lora.ranks': {lora['ranks']} must hold the released adapter's rank "
            f"{rank} ({path}) and no other rank above 0"
        )


def diffusers_state(state: dict[str, Any]) -> dict[str, Any]:
    """The tensors with the `unet.` prefix `load_lora_weights` expects where they have none."""
    return {key if key.startswith(PARTS) else f"unet.{key}": value for key, value in state.items()}


def import_lora(*, released: str, weights: str, base_model: str, rank: int, sha256: str) -> None:
    """Job: the released adapter, loaded into the base model, as the fold's adapter `weights`.

    `sha256` is the file's hash from when the DAG was built: a file changed since stops.
    """
    from peft.utils import get_peft_model_state_dict
    from safetensors.torch import load_file

    from meddap.common.hashing import file_sha256
    from meddap.diffusion.pipeline import load_pipeline
    from meddap.lora.train import save_adapter

    if file_sha256(released) != sha256:
        raise MeddapError(f"{released} changed after the workflow was planned: run snakemake again")
    state = load_file(released)
    pipe = load_pipeline(base_model)
    try:
        pipe.load_lora_weights(diffusers_state(state), adapter_name=ADAPTER)
    except (ValueError, RuntimeError, KeyError) as err:
        raise MeddapError(
            f"config key '{KEY}': {released} does not fit base model {base_model}: "
            f"{str(err).splitlines()[0]}"
        ) from None
    loaded = get_peft_model_state_dict(pipe.unet, adapter_name=ADAPTER)
    if len(loaded) != len(state) or pipe.unet.peft_config[ADAPTER].r != rank:
        raise MeddapError(
            f"config key '{KEY}': base model {base_model} took {len(loaded)} of the "
            f"{len(state)} tensors of {released} at rank {pipe.unet.peft_config[ADAPTER].r} "
            f"(expected all, at rank {rank})"
        )
    save_adapter(pipe.unet, weights, adapter_name=ADAPTER)
