"""MTL's building blocks: oversampling, refining, the multi-task network, loss and scores."""

from __future__ import annotations

from collections import Counter

import pytest
import torch
from monai.losses import DiceLoss, FocalLoss

from meddap.common.errors import MeddapError
from meddap.common.labels import CLASSES
from meddap.common.settings import Budget
from meddap.common.training import fit
from meddap.multitask.losses import MultiTaskLoss
from meddap.multitask.metrics import joint_scores
from meddap.multitask.models import BACKBONES, N_HEADS, MultiTaskNet
from meddap.multitask.oversampling import oversampled, repeats
from meddap.multitask.refine import incoherent, refine
from meddap.multitask.tasks import MultiTaskTask
from meddap.seg.data import Pairs
from meddap.seg.models import heads

NORMAL, BENIGN, MALIGNANT = (CLASSES.index(c) for c in ("normal", "benign", "malignant"))
CHANNELS = (4, 8, 8, 16, 16)


def test_oversampling_rounds_the_papers_example_and_keeps_the_order() -> None:
    labels = ["benign"] * 493 + ["malignant"] * 364 + ["normal"] * 142  # 49.3 / 36.4 / 14.2 %
    assert repeats(labels) == {"benign": 2, "malignant": 3, "normal": 7}  # ceiling: 3, 3, 8
    assert oversampled(["normal", "benign", "benign"]) == [0, 0, 0, 1, 1, 2, 2]  # 3, round(1.5)
    with pytest.raises(MeddapError, match="non-empty train split"):
        repeats([])


def _mask(*lit: int) -> torch.Tensor:
    """(len(lit), 1, 4, 4) masks with `lit` pixels each."""
    masks = torch.zeros(len(lit), 1, 4, 4)
    for i, n in enumerate(lit):
        masks[i].view(-1)[:n] = 1
    return masks


def test_refining_makes_every_class_and_mask_agree() -> None:
    classes = torch.tensor([NORMAL, BENIGN, MALIGNANT, NORMAL])
    masks = _mask(3, 0, 5, 0)  # normal with a lesion, benign without one, two coherent
    assert incoherent(classes, masks).tolist() == [True, True, False, False]
    refined, cleared = refine(classes, masks)
    assert refined.tolist() == [NORMAL, NORMAL, MALIGNANT, NORMAL]
    assert cleared.flatten(1).sum(1).tolist() == [0, 0, 5, 0]
    assert not incoherent(refined, cleared).any()


@pytest.mark.parametrize("backbone", BACKBONES)
def test_the_network_segments_and_classifies_from_the_level_before_the_bottleneck(
    backbone: str,
) -> None:
    torch.manual_seed(0)
    net = MultiTaskNet(backbone, CHANNELS, width=12, hidden=6)
    segmentation, logits = net(torch.randn(2, 1, 32, 32))
    assert logits.shape == (2, len(CLASSES))
    assert [h.shape for h in heads(segmentation)] == [(2, 1, 32, 32)] * N_HEADS
    assert all(m.shape[-1] == 32 // 8 for m in net._maps)  # the level before the bottleneck
    logits.sum().backward()
    encoder = next(net.segmenter.parameters())
    assert encoder.grad is not None and encoder.grad.abs().sum() > 0  # the head trains the encoder
    net.eval()
    segmentation, _ = net(torch.randn(1, 1, 32, 32))
    assert heads(segmentation)[0].shape == (1, 1, 32, 32)
    with pytest.raises(MeddapError, match="backbone 'unet'"):
        MultiTaskNet("unet", CHANNELS, 12, 6)


def test_the_loss_weighs_dice_heads_by_one_over_i_and_the_focal_term_by_one_minus_lambda() -> None:
    torch.manual_seed(0)
    outputs = [torch.randn(2, 1, 8, 8) for _ in range(3)]  # UNet++ order: coarsest ... main
    masks = (torch.rand(2, 1, 8, 8) > 0.5).float()
    logits, classes = torch.randn(2, 3), torch.tensor([BENIGN, NORMAL])
    dice = DiceLoss(sigmoid=True, smooth_nr=1.0, smooth_dr=1.0)
    main_first = list(reversed(outputs))
    seg = sum(dice(o, masks) / i for i, o in enumerate(main_first, start=1))
    focal = FocalLoss(gamma=2.0, use_softmax=True, to_onehot_y=True)(
        logits[..., None], classes[:, None, None]
    )
    loss = MultiTaskLoss(0.85, n_heads=3)((outputs, logits), masks, classes)
    assert loss.item() == pytest.approx((0.85 * seg + 0.15 * focal).item(), rel=1e-6)
    only_seg = MultiTaskLoss(1.0, n_heads=3)((outputs, logits), masks, classes)
    assert only_seg.item() == pytest.approx(seg.item(), rel=1e-6)
    with pytest.raises(MeddapError, match="λ must lie in"):
        MultiTaskLoss(1.5, n_heads=3)


def test_joint_scores_count_normals_in_dice_and_report_incoherence() -> None:
    true_classes = torch.tensor([NORMAL, NORMAL, BENIGN, MALIGNANT])
    true_masks = _mask(0, 0, 4, 8)
    classes = torch.tensor([NORMAL, BENIGN, BENIGN, BENIGN])
    masks = _mask(0, 2, 4, 0)  # normal right; normal with a lesion; benign exact; empty malignant
    scores = joint_scores(classes, masks, true_classes, true_masks)
    assert scores["dice"] == {"mean": 0.5, "normal": 0.5, "benign": 1.0, "malignant": 0.0}
    assert scores["accuracy"] == 0.5
    assert scores["confusion_matrix"]["counts"][CLASSES.index("malignant")][BENIGN] == 1
    assert scores["f1"]["malignant"] == 0.0 and 0 < scores["f1"]["weighted"] < 1
    assert scores["incoherence_rate"] == 0.25  # the benign prediction with an empty mask


def test_a_class_absent_from_the_truth_is_null_in_dice_f1_and_recall_alike() -> None:
    """No malignant test image: its F1 and recall are undefined like its Dice, even where one is
    predicted, and balanced accuracy averages the recalls of the classes present."""
    true_classes = torch.tensor([NORMAL, BENIGN, BENIGN])
    classes = torch.tensor([NORMAL, BENIGN, MALIGNANT])
    scores = joint_scores(classes, _mask(0, 4, 4), true_classes, _mask(0, 4, 4))
    assert scores["dice"]["malignant"] is None and scores["f1"]["malignant"] is None
    assert scores["f1"]["normal"] == 1.0 and scores["f1"]["benign"] == pytest.approx(2 / 3)
    assert scores["recall"] == {"normal": 1.0, "benign": 0.5, "malignant": None}
    assert scores["balanced_accuracy"] == 0.75 and scores["accuracy"] == pytest.approx(2 / 3)


def _pairs(labels: list[str], seed: int) -> Pairs:
    """32-px images: a dark square (the lesion, in the mask) unless normal."""
    g = torch.Generator().manual_seed(seed)
    images = 0.6 + 0.1 * torch.rand(len(labels), 1, 32, 32, generator=g)
    masks = torch.zeros(len(labels), 1, 32, 32)
    for i, label in enumerate(labels):
        if label != "normal":
            side = 8 if label == "benign" else 14
            masks[i, :, 8 : 8 + side, 8 : 8 + side] = 1
    images = torch.where(masks > 0, 0.1, images)
    return Pairs([f"x{i}" for i in range(len(labels))], labels, images, masks)


def test_the_task_oversamples_trains_and_ranks_validations_by_lambda() -> None:
    labels = ["benign"] * 6 + ["malignant"] * 3 + ["normal"] * 2
    train, val = _pairs(labels, 0), _pairs(["benign", "malignant", "normal"], 1)
    criterion = MultiTaskLoss(0.5, n_heads=4)
    plain = MultiTaskTask(train, val, 4, criterion, oversample=False)
    task = MultiTaskTask(train, val, 4, criterion, oversample=True)
    order = torch.Generator().manual_seed(0)
    batches = [task.batch(index, order) for index in task.indices(order)]
    seen = [label for b in batches for label in b.targets["classes"].tolist()]
    assert sorted(Counter(seen).values()) == [6 * 2, 3 * 4, 2 * 6]  # round(11/6), 11/3, 11/2
    assert sum(len(index) for index in plain.indices(order)) == len(train)
    torch.manual_seed(0)
    net = MultiTaskNet("unetpp_ds", CHANNELS, width=12, hidden=6)
    budget = Budget(steps=27, eval_every=9, warmup=0, patience=None)
    best = fit(net, torch.optim.Adam(net.parameters(), lr=1e-2), task, budget=budget, seed=0)
    keys = [task.score_key(e) for e in best.history]
    kept = next(e for e in best.history if e["update"] == best.update)
    assert task.score_key(kept) == max(keys) and best.updates == 27
    assert best.history[-1]["train_loss"] < best.history[0]["train_loss"]
    classes, masks = best.outputs
    assert classes.shape == (3,) and masks.shape == (3, 1, 32, 32)
