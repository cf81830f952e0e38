"""MEDDAP prompts: "{adjective} ultrasound image of {benign|malignant|no} tumor in the breast"."""

from __future__ import annotations

import re

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
