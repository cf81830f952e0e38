"""MONAI imported without transformers/torchvision computes what the full import computes."""

from __future__ import annotations

import subprocess
import sys

import pytest

from meddap.common.monai_import import absent

# a segmenter's forward pass, a deep-stack augmentation, the loss and HD95 on fixed inputs
PROBE = """
import hashlib, sys, torch
{first}
from meddap.seg.augment import augment, augmenter
from meddap.seg.metrics import image_scores
from meddap.seg.models import build_segmenter
from meddap.trainsets import parse
from monai.losses import DiceCELoss
torch.manual_seed(0)
net = build_segmenter("unet", [4, 8, 16, 32, 64])
images = torch.rand(2, 1, 32, 32)
masks = (torch.rand(2, 1, 32, 32) > 0.7).float()
images, masks = augment(augmenter(parse("aug-deepstack"), 1.0), images, masks, seed=3)
logits = net(images)
loss = DiceCELoss(sigmoid=True)(logits, masks)
scores = image_scores(logits > 0, masks.bool())
digest = hashlib.sha256()
for t in (images, masks, logits.detach(), loss.detach()):
    digest.update(t.numpy().tobytes())
digest.update(scores.to_csv().encode())
print(digest.hexdigest(), "transformers" in sys.modules, "torchvision" in sys.modules)
"""


def _probe(first: str) -> list[str]:
    code = PROBE.format(first=first)
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return run.stdout.split()


@pytest.mark.slow
def test_the_lean_import_skips_the_unused_packages_and_computes_the_same_bytes() -> None:
    full = _probe("import torchvision, transformers  # loaded first: MONAI imports in full")
    lean = _probe("")
    assert full[1:] == ["True", "True"] and lean[1:] == ["False", "False"]
    assert lean[0] == full[0]


def test_a_package_hidden_in_the_block_imports_normally_after_it() -> None:
    name = "colorsys"  # stdlib, cheap; a stand-in for transformers
    sys.modules.pop(name, None)
    with absent([name]), pytest.raises(ImportError):
        __import__(name)
    assert __import__(name).__name__ == name


def test_a_package_already_imported_is_not_hidden() -> None:
    with absent(["json"]):
        assert __import__("json").dumps([1]) == "[1]"


def test_after_monai_the_classifiers_torchvision_imports_in_the_same_process() -> None:
    code = "import meddap.seg.train, torchvision.models; print(torchvision.models.squeezenet1_1)"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
