"""USLoRA adapters on the UNet and their parameter counts (real SD v1.x, no weights needed)."""

from __future__ import annotations

import re

from accelerate import init_empty_weights
from diffusers import UNet2DConditionModel
from peft import LoraConfig

from meddap.common.errors import MeddapError
from meddap.lora.names import FULL

TARGETS = {
    "attn2": r".*attn2\.(to_q|to_k|to_v|to_out\.0)",
    "attn1_attn2": r".*attn[12]\.(to_q|to_k|to_v|to_out\.0)",
}
SD14_UNET_CONFIG = {
    "act_fn": "silu",
    "attention_head_dim": 8,
    "block_out_channels": [320, 640, 1280, 1280],
    "center_input_sample": False,
    "cross_attention_dim": 768,
    "down_block_types": ["CrossAttnDownBlock2D"] * 3 + ["DownBlock2D"],
    "downsample_padding": 1,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "in_channels": 4,
    "layers_per_block": 2,
    "mid_block_scale_factor": 1,
    "norm_eps": 1e-05,
    "norm_num_groups": 32,
    "out_channels": 4,
    "sample_size": 64,
    "up_block_types": ["UpBlock2D"] + ["CrossAttnUpBlock2D"] * 3,
}


def lora_config(rank: int, targets: str) -> LoraConfig:
    """LoRA on the attention projections W_q, W_k, W_v, W_o of `targets` (alpha = rank)."""
    if targets not in TARGETS:
        raise MeddapError(f"config key 'lora.targets': {targets!r} is not one of {list(TARGETS)}")
    if rank < 1:
        raise MeddapError(f"LoRA rank {rank} must be a positive integer")
    return LoraConfig(
        r=rank, lora_alpha=rank, init_lora_weights="gaussian", target_modules=TARGETS[targets]
    )


def add_lora(unet: UNet2DConditionModel, rank: int, targets: str) -> None:
    """Freeze `unet` and inject a trainable LoRA adapter through peft."""
    unet.requires_grad_(False)
    unet.add_adapter(lora_config(rank, targets))


def param_counts(unet: UNet2DConditionModel) -> dict[str, float]:
    """Trainable (LoRA) and total base UNet parameters of an adapted `unet`, and their ratio.

    A fully trained UNet (nothing frozen) has trainable = total.
    """
    trainable = sum(p.numel() for p in unet.parameters() if p.requires_grad)
    total = sum(p.numel() for p in unet.parameters()) - trainable or trainable
    return {"trainable": trainable, "total": total, "fraction": trainable / total}


def _sd14_unet() -> UNet2DConditionModel:
    """The SD v1.4 UNet architecture on the meta device (no weights, nothing downloaded)."""
    with init_empty_weights():
        return UNet2DConditionModel.from_config(SD14_UNET_CONFIG)


def count_lora_params(rank: int | str, targets: str) -> dict[str, float]:
    """LoRA parameter counts on the SD v1.4 UNet; rank FULL counts full fine-tuning."""
    unet = _sd14_unet()
    if rank != FULL:
        with init_empty_weights():
            add_lora(unet, rank, targets)
    return {"rank": rank, "targets": targets, **param_counts(unet)}


def largest_rank(targets: tuple[str, ...] = tuple(TARGETS)) -> int:
    """The largest LoRA rank every layer of the SD v1.4 UNet that one of `targets` adapts
    allows: the smallest input or output size among them (a larger rank only adds parameters,
    not expressiveness)."""
    patterns = [re.compile(TARGETS[name]) for name in targets]
    return min(
        min(module.in_features, module.out_features)
        for name, module in _sd14_unet().named_modules()
        if any(pattern.fullmatch(name) for pattern in patterns)
    )


def lora_params_table(ranks: tuple[int, ...] = (2, 4, 8)) -> str:
    """A printable table of LoRA parameter counts for `ranks` (checked, as `--ranks`) and both
    target sets."""
    largest = largest_rank()
    for rank in ranks:
        if not 1 <= rank <= largest:
            raise MeddapError(
                f"lora-params --ranks {rank} must be from 1 to {largest}, the largest rank every "
                "targeted layer of the SD v1.4 UNet allows (its smallest input or output size)"
            )
    lines = [
        "USLoRA parameters on the SD v1.4 UNet architecture (weights not needed)",
        f"{'targets':<12} {'rank':>4} {'LoRA params':>12} {'UNet params':>12} {'% of UNet':>10}",
    ]
    for targets in TARGETS:
        for rank in ranks:
            c = count_lora_params(rank, targets)
            flag = "  < 0.1% of UNet parameters" if c["fraction"] < 1e-3 else ""
            lines.append(
                f"{targets:<12} {rank:>4} {c['trainable']:>12,} {c['total']:>12,} "
                f"{100 * c['fraction']:>9.3f}%{flag}"
            )
    return "\n".join(lines)
