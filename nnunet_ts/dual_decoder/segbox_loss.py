"""Losses of the dual-decoder student: the box decoder's segbox loss, and seg + lambda * box.

``SegboxLoss``: soft Dice + binary cross-entropy on the sigmoid of the box decoder's logits against
the 0/1 segbox. ``DualDecoderLoss`` takes what the dual network returns in training,
``(segmentation, segbox)`` (each a list over deep-supervision scales, highest resolution first, or a
tensor), and the target the dual student's pipeline makes: channel 0 the foreground probability,
channel 1 the segbox, at every scale. The segmentation loss is the single-output student's, unchanged
(nnU-Net's deep-supervision wrapper around ``soft_losses.SoftTargetLoss``); the segbox loss uses the
same scale weights. Given a plain output (the network in eval mode: nnU-Net's validation, whose
target has no segbox channel), it is the segmentation loss alone, target passed unchanged.

Tensors are (B, C, Z, Y, X) (or (B, C, Y, X)).
"""
from __future__ import annotations

import torch
from torch import nn

from nnunet_ts.student.soft_losses import SoftDiceLoss


class SegboxLoss(nn.Module):
    """``dice * (-soft Dice) + bce * BCE`` of sigmoid(logits) against the segbox.

    Args:
        dice, bce: term weights (>= 0, not both 0).
        batch_dice: one Dice over the batch (nnU-Net's ``batch_dice``), else per sample, then the mean.
        smooth: added to the Dice's numerator and denominator (a patch without box and without
            predicted box scores Dice 1).
    Raises:
        ValueError: a negative weight, or both weights 0.
    """

    def __init__(self, dice: float = 1.0, bce: float = 1.0, batch_dice: bool = False, smooth: float = 1e-5,
                 ddp: bool = False):
        super().__init__()
        if dice < 0 or bce < 0 or dice == bce == 0:
            raise ValueError(f"segbox loss weights must be >= 0 and not both 0, got dice={dice}, bce={bce}")
        self.dice_weight, self.bce_weight = float(dice), float(bce)
        self.dice = SoftDiceLoss(batch_dice=batch_dice, do_bg=True, smooth=smooth, ddp=ddp)

    def forward(self, logits: torch.Tensor, segbox: torch.Tensor) -> torch.Tensor:
        """logits (B, 1, ...) box-decoder output; segbox (B, 1, ...) 0/1. Returns a scalar."""
        if logits.shape != segbox.shape:
            raise ValueError(f"segbox target shape {tuple(segbox.shape)} must equal the box decoder's "
                             f"output shape {tuple(logits.shape)}")
        logits, segbox = logits.float(), segbox.to(torch.float32)
        loss = logits.new_zeros(())
        if self.dice_weight:
            loss = loss + self.dice_weight * self.dice(torch.sigmoid(logits), segbox)
        if self.bce_weight:
            loss = loss + self.bce_weight * nn.functional.binary_cross_entropy_with_logits(logits, segbox)
        return loss


def _scales(x):
    return list(x) if isinstance(x, (list, tuple)) else [x]


class DualDecoderLoss(nn.Module):
    """``seg_loss(segmentation, target[:, :1]) + box_weight * box_loss(segbox, target[:, 1:2])``.

    Args:
        seg_loss: called with (segmentation output, foreground-probability target), both as the
            network and pipeline give them (lists over scales under deep supervision).
        box_loss: the same for the segbox output and target (wrap it in nnU-Net's
            ``DeepSupervisionWrapper`` under deep supervision, as ``seg_loss``).
        box_weight: lambda (>= 0).
    """

    def __init__(self, seg_loss: nn.Module, box_loss: nn.Module, box_weight: float = 1.0):
        super().__init__()
        if box_weight < 0:
            raise ValueError(f"box_weight must be >= 0, got {box_weight}")
        self.seg_loss, self.box_loss, self.box_weight = seg_loss, box_loss, float(box_weight)

    @staticmethod
    def split_target(target):
        """Target (B, 2, ...) per scale -> (foreground probability (B, 1, ...), segbox (B, 1, ...)) per scale."""
        scales = _scales(target)
        seg, box = [t[:, :1] for t in scales], [t[:, 1:2] for t in scales]
        return (seg, box) if isinstance(target, (list, tuple)) else (seg[0], box[0])

    def parts(self, output, target) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(segmentation loss, segbox loss); the segbox loss is None for a plain (eval-mode) output."""
        if isinstance(output, tuple) and len(output) == 2:
            seg_target, box_target = self.split_target(target)
            return self.seg_loss(output[0], seg_target), self.box_loss(output[1], box_target)
        # validation: the network in eval mode gives the segmentation, and the validation target is
        # the single-output student's (no segbox channel; soft one-hot after its validation_step)
        return self.seg_loss(output, target), None

    def forward(self, output, target) -> torch.Tensor:
        seg, box = self.parts(output, target)
        return seg if box is None else seg + self.box_weight * box
