"""The student's loss: nnU-Net's Dice+CE on hard targets, hand-checked values on soft ones."""
import math

import numpy as np
import pytest
import torch

from nnunet_ts.student.soft_losses import SoftDiceLoss, SoftTargetLoss, StudentLossConfig, soft_one_hot


def _batch(seed: int, shape=(3, 2, 6, 8, 8)):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(shape, generator=g) * 2
    labels = (torch.rand((shape[0], 1, *shape[2:]), generator=g) > 0.7).to(torch.int16)
    return logits, labels


def _nnunet_loss(batch_dice: bool, deep_supervision: bool, smooth: float = 1e-5):
    from nnunetv2.training.loss.compound_losses import DC_and_CE_loss
    from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper
    from nnunetv2.training.loss.dice import MemoryEfficientSoftDiceLoss

    loss = DC_and_CE_loss({"batch_dice": batch_dice, "smooth": smooth, "do_bg": False, "ddp": False}, {},
                          weight_ce=1, weight_dice=1, ignore_label=None, dice_class=MemoryEfficientSoftDiceLoss)
    return DeepSupervisionWrapper(loss, [4 / 7, 2 / 7, 1 / 7]) if deep_supervision else loss


@pytest.mark.parametrize("smooth", [1e-5, 0.0])  # nnU-Net's default and its _noSmooth trainer
@pytest.mark.parametrize("batch_dice", [True, False])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_equals_nnunet_dice_ce_on_hard_targets(batch_dice, seed, smooth):
    logits, labels = _batch(seed)
    ours = SoftTargetLoss(StudentLossConfig(dice_smooth=smooth), batch_dice=batch_dice)
    expected = _nnunet_loss(batch_dice, False, smooth)(logits, labels)
    got = ours(logits, soft_one_hot(labels.float()))
    assert abs(got.item() - expected.item()) < 1e-5
    # unit source weights change nothing, whatever the sources
    ours.set_batch_sources([True, False, True])
    assert abs(ours(logits, soft_one_hot(labels.float())).item() - expected.item()) < 1e-5


def test_equals_nnunet_with_deep_supervision():
    from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper

    scales = [_batch(s, (2, 2, 8 // 2 ** i, 16 // 2 ** i, 16 // 2 ** i)) for s, i in zip((3, 4, 5), range(3))]
    outputs, labels = [s[0] for s in scales], [s[1] for s in scales]
    expected = _nnunet_loss(True, True)(outputs, labels)
    ours = DeepSupervisionWrapper(SoftTargetLoss(batch_dice=True), [4 / 7, 2 / 7, 1 / 7])
    got = ours(outputs, [soft_one_hot(label.float()) for label in labels])
    assert abs(got.item() - expected.item()) < 1e-5


def test_gradients_equal_nnunet_on_hard_targets():
    logits, labels = _batch(7)
    a, b = logits.clone().requires_grad_(), logits.clone().requires_grad_()
    _nnunet_loss(True, False)(a, labels).backward()
    SoftTargetLoss(batch_dice=True)(b, soft_one_hot(labels.float())).backward()
    torch.testing.assert_close(b.grad, a.grad, atol=1e-7, rtol=1e-4)


def test_soft_values_by_hand():
    # one sample, two voxels; logits give p_fg = 0.5 and sigmoid(2) = 0.8808
    logits = torch.tensor([[0.0, 0.0], [0.0, 2.0]]).view(1, 2, 2, 1, 1)  # (B, C, z, y, x)
    p_fg = torch.tensor([0.5, 1 / (1 + math.exp(-2))])
    t_fg = torch.tensor([0.3, 0.9])
    target = soft_one_hot(t_fg.view(1, 1, 2, 1, 1))
    smooth = 1e-5
    dice = (2 * (p_fg * t_fg).sum() + smooth) / (p_fg.sum() + t_fg.sum() + smooth)
    ce = -(t_fg * p_fg.log() + (1 - t_fg) * (1 - p_fg).log()).mean()
    l1 = (p_fg - t_fg).abs().mean()
    loss = SoftTargetLoss(StudentLossConfig(dice=1, ce=1))
    assert loss(logits, target).item() == pytest.approx((-dice + ce).item(), abs=1e-6)
    bc = SoftTargetLoss(StudentLossConfig.baldeon_calisto(beta=0.3))
    bc.set_batch_sources([True])
    assert bc(logits, target).item() == pytest.approx((-0.3 * dice + 0.7 * (ce + l1)).item(), abs=1e-6)
    bc.set_batch_sources([False])  # L1 on pseudo cases only
    assert bc(logits, target).item() == pytest.approx((-0.3 * dice + 0.7 * ce).item(), abs=1e-6)


def test_soft_target_minimum_is_the_target_itself():
    """Soft CE is minimal where the prediction equals the soft target (not at its 0/1 rounding)."""
    t = torch.full((1, 1, 4, 4, 4), 0.3)
    target = soft_one_hot(t)
    loss = SoftTargetLoss(StudentLossConfig(dice=0, ce=1))
    values = {}
    for p in (0.1, 0.3, 0.5, 0.0001):
        logit = math.log(p / (1 - p))
        logits = torch.cat([torch.zeros_like(t), torch.full_like(t, logit)], 1)
        values[p] = loss(logits, target).item()
    assert min(values, key=values.get) == 0.3
    assert values[0.3] == pytest.approx(-(0.3 * math.log(0.3) + 0.7 * math.log(0.7)), abs=1e-5)


def test_source_weights():
    logits, labels = _batch(11, (2, 2, 4, 6, 6))
    target = soft_one_hot(labels.float())
    single = [SoftTargetLoss(StudentLossConfig(dice=0, ce=1))(logits[i:i + 1], target[i:i + 1]).item()
              for i in range(2)]
    weighted = SoftTargetLoss(StudentLossConfig(dice=0, ce=1, strong=1.0, pseudo=0.25))
    weighted.set_batch_sources([False, True])
    assert weighted(logits, target).item() == pytest.approx((single[0] + 0.25 * single[1]) / 2, rel=1e-6)
    # pseudo weight 0 and per-sample Dice: the pseudo sample contributes nothing
    dice_only = SoftTargetLoss(StudentLossConfig(dice=1, ce=0, pseudo=0.0), batch_dice=False)
    dice_only.set_batch_sources([False, True])
    strong_dice = SoftDiceLoss(batch_dice=False)(torch.softmax(logits[:1], 1), target[:1]).item()
    assert dice_only(logits, target).item() == pytest.approx(strong_dice / 2, rel=1e-6)
    # batch Dice with pseudo weight 0 is the strong sample's Dice
    batch = SoftTargetLoss(StudentLossConfig(dice=1, ce=0, pseudo=0.0), batch_dice=True)
    batch.set_batch_sources([False, True])
    assert batch(logits, target).item() == pytest.approx(strong_dice, rel=1e-6)


def test_smooth_rewards_an_all_background_output_on_patches_without_tumour():
    # per-sample Dice (nnU-Net's 3d_fullres default): one patch with a tumour, one without
    target = torch.zeros((2, 1, 16, 16, 16))
    target[0, :, 4:7, 4:7, 4:7] = 0.8  # a soft pseudo-label: the best Dice on this patch stays below 1
    found = torch.zeros((2, 2, 16, 16, 16))
    found[:, 1] = -10.0  # background where there is none (foreground ~5e-5 per voxel), the tumour found
    found[0, 1, 4:7, 4:7, 4:7] = 10.0
    missed = torch.zeros((2, 2, 16, 16, 16))
    missed[:, 1] = -60.0  # background everywhere (foreground ~1e-26 per voxel), the tumour missed
    soft = soft_one_hot(target)

    def loss(smooth, logits):
        return SoftDiceLoss(batch_dice=False, smooth=smooth)(torch.softmax(logits, 1), soft).item()

    # nnU-Net's smooth: missing the tumour scores better than finding it (Dice 1 on the empty patch)
    assert loss(1e-5, missed) == pytest.approx(-0.5, abs=1e-4)
    assert loss(1e-5, missed) < loss(1e-5, found)
    # smooth 0: the empty patch adds nothing either way, and finding the tumour wins
    assert loss(0.0, missed) == pytest.approx(0.0, abs=1e-6)
    assert loss(0.0, found) < loss(0.0, missed)


@pytest.mark.parametrize("kwargs, message", [
    ({"dice": -1}, "dice must be >= 0"),
    ({"dice_smooth": -1e-5}, "the Dice.s dice_smooth must be >= 0"),
    ({"pseudo": -0.5}, "pseudo must be >= 0"),
    ({"dice": 0, "ce": 0, "l1": 0}, "at least one"),
])
def test_config_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        StudentLossConfig(**kwargs)


def test_wrong_target_shape_and_sources_length():
    loss = SoftTargetLoss()
    logits, labels = _batch(0)
    with pytest.raises(ValueError, match="soft one-hot"):
        loss(logits, labels.float()[:, :, :3])
    # a one-channel target is the foreground probability: the same as its soft one-hot
    assert loss(logits, labels.float()).item() == loss(logits, soft_one_hot(labels.float())).item()
    loss.set_batch_sources([True])
    with pytest.raises(RuntimeError, match="batch of 3"):
        loss(logits, soft_one_hot(labels.float()))
    assert np.isfinite(SoftTargetLoss()(logits, soft_one_hot(labels.float())).item())


def test_l1_is_the_mean_over_pseudo_samples_whatever_the_strong_samples_beside_them():
    # the same pseudo sample alone and with three strong samples: the L1 term must not shrink to 1/4
    torch.manual_seed(0)
    logits = torch.randn(4, 2, 3, 4, 4)
    target = soft_one_hot(torch.rand(4, 1, 3, 4, 4))
    l1_only = SoftTargetLoss(StudentLossConfig(dice=0, ce=0, l1=1))
    l1_only.set_batch_sources([True])
    alone = l1_only(logits[:1], target[:1])
    by_hand = (torch.softmax(logits[:1], 1)[:, 1] - target[:1, 1]).abs().mean()
    assert alone.item() == pytest.approx(by_hand.item(), abs=1e-6)
    l1_only.set_batch_sources([True, False, False, False])
    assert l1_only(logits, target).item() == pytest.approx(alone.item(), abs=1e-6)
    # two pseudo samples: their mean; per-source weights scale each
    l1_only.set_batch_sources([True, True, False, False])
    second = (torch.softmax(logits[1:2], 1)[:, 1] - target[1:2, 1]).abs().mean()
    assert l1_only(logits, target).item() == pytest.approx(((by_hand + second) / 2).item(), abs=1e-6)
    weighted = SoftTargetLoss(StudentLossConfig(dice=0, ce=0, l1=1, pseudo=0.5))
    weighted.set_batch_sources([True, False, False, False])
    assert weighted(logits, target).item() == pytest.approx(0.5 * alone.item(), abs=1e-6)
