"""MEDDAP prompts: "{adjective} ultrasound image of {benign|malignant|no} tumor in the breast"."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from meddap.common.errors import MeddapError

ADJECTIVES = (
    "none", "colorful", "stylized", "high-contrast", "low-contrast", "posterized", "sheared",
    "solarized", "bright", "dark",
)  # fmt: skip
LABEL_WORDS = {"normal": "no", "benign": "benign", "malignant": "malignant"}
TEMPLATE = "ultrasound image of {tumor} tumor in the breast"
_SLUG = re.compile(r"[a-z]+(-[a-z]+)*")


def prompt(label: str, adjective: str = "none") -> str:
    """The prompt for a class `label`, prefixed by `adjective` unless it is 'none'."""
    if label not in LABEL_WORDS:
        raise MeddapError(f"label {label!r} is not one of {', '.join(LABEL_WORDS)}")
    if not _SLUG.fullmatch(adjective):
        raise MeddapError(
            f"adjective {adjective!r} is not a slug (lowercase words joined by hyphens)"
        )
    text = TEMPLATE.format(tumor=LABEL_WORDS[label])
    return text if adjective == "none" else f"{adjective} {text}"


def check_prompt_lengths(tokenizer: Any, texts: Iterable[str], source: str) -> None:
    """Stop on the first of `texts` (from `source`) longer than the text encoder's positions.

    Diffusers cuts a longer text to `tokenizer.model_max_length` tokens (77 for CLIP; a negative
    prompt without any warning), so images would follow another text than the recorded one.
    """
    limit = tokenizer.model_max_length
    for text in texts:
        count = len(tokenizer(text, verbose=False).input_ids)
        if count > limit:
            raise MeddapError(
                f"{source}: {text[:60]!r}... is {count} tokens with start and end, over the "
                f"text encoder's {limit}; shorten it"
            )
