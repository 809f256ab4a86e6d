"""Losses on soft targets for the student: soft Dice + soft cross-entropy (+ L1), per-sample weights.

The student learns from targets that are probabilities: a human mask (0/1) for *strong* cases, the
teacher's foreground probability for *pseudo* cases (``docs/method.md`` "Pipeline", steps 3-4). nnU-Net's
``DC_and_CE_loss`` takes integer labels only (its cross-entropy needs them), so this module computes
the same two terms on a soft one-hot target:

* soft Dice: nnU-Net's ``MemoryEfficientSoftDiceLoss`` conventions (softmax, background excluded,
  ``smooth`` in numerator and denominator, ``batch_dice`` sums over the batch before the ratio), with
  the target used as given (probabilities, not labels); ``dice_smooth`` 0 is nnU-Net's
  ``nnUNetTrainerDiceCELoss_noSmooth``;
* soft cross-entropy: ``-sum_c t_c log softmax(x)_c``, averaged over voxels and samples;
* L1 (Baldeon Calisto): ``|softmax(x)_fg - t_fg|`` averaged over voxels and over the pseudo samples only
  (strong samples of the batch do not dilute it).

On one-hot (hard) targets with unit weights, ``SoftTargetLoss`` equals nnU-Net's ``DC_and_CE_loss``
(tested to 1e-5): on strong-only data the student is nnU-Net.

Per-sample weights (one per case source, strong or pseudo) scale each sample's share: its voxel
sums in batch Dice, its term in per-sample Dice, cross-entropy and L1. All weights 1 is nnU-Net's
plain union of the two sets.

Shapes: network output ``x`` (B, 2, z, y, x) logits (background, tumour); target either the
foreground probability p (B, 1, z, y, x) or its soft one-hot (B, 2, z, y, x) = ``[1 - p, p]``,
values in [0, 1].
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class StudentLossConfig:
    """Weights of the student's loss terms.

    Attributes:
        dice: weight of the soft Dice term.
        ce: weight of the soft cross-entropy term (nnU-Net: 1).
        l1: weight of the L1 term between predicted and target foreground probability, on pseudo
            samples only (Baldeon Calisto; 0 = off).
        strong: per-sample weight of strong (human-labelled) cases.
        pseudo: per-sample weight of pseudo-labelled cases.
        dice_smooth: added to the soft Dice's numerator and denominator (nnU-Net: 1e-5). Without
            ``batch_dice``, a patch without tumour then scores Dice 1 for an output whose summed
            foreground probability is far below ``dice_smooth`` and about 0 otherwise: a reward only
            an all-background network collects, a well that soft targets (whose Dice stays below 1
            on tumour patches) fall into. 0 (nnU-Net's ``nnUNetTrainerDiceCELoss_noSmooth``): such
            patches add nothing to the Dice term.

    Raises:
        ValueError: a negative weight, or all term weights zero.
    """

    dice: float = 1.0
    ce: float = 1.0
    l1: float = 0.0
    strong: float = 1.0
    pseudo: float = 1.0
    dice_smooth: float = 1e-5

    def __post_init__(self) -> None:
        for name in ("dice", "ce", "l1", "strong", "pseudo"):
            if getattr(self, name) < 0:
                raise ValueError(f"loss weight {name} must be >= 0, got {getattr(self, name)}")
        if self.dice_smooth < 0:
            raise ValueError(f"the Dice's dice_smooth must be >= 0 (nnU-Net: 1e-5, noSmooth trainers: 0), "
                             f"got {self.dice_smooth}")
        if self.dice == self.ce == self.l1 == 0:
            raise ValueError("at least one of the dice, ce and l1 weights must be > 0")

    @classmethod
    def baldeon_calisto(cls, beta: float = 0.5, strong: float = 1.0, pseudo: float = 1.0) -> StudentLossConfig:
        """beta * Dice + (1 - beta) * (soft CE + L1), L1 on pseudo samples (Baldeon Calisto, FLARE 2022)."""
        if not 0.0 <= beta <= 1.0:
            raise ValueError(f"beta must be in [0, 1], got {beta}")
        return cls(dice=beta, ce=1.0 - beta, l1=1.0 - beta, strong=strong, pseudo=pseudo)


def soft_one_hot(foreground: torch.Tensor) -> torch.Tensor:
    """(B, 1, ...) foreground probability -> (B, 2, ...) soft one-hot ``[1 - p, p]``."""
    return torch.cat([1.0 - foreground, foreground], dim=1)


class SoftDiceLoss(nn.Module):
    """Negative soft Dice on probabilities, nnU-Net's ``MemoryEfficientSoftDiceLoss`` conventions.

    Args:
        batch_dice: sum intersections and volumes over the batch before the ratio (nnU-Net's
            ``configuration_manager.batch_dice``); else one Dice per sample and class, then the mean.
        do_bg: include the background channel (nnU-Net: False for softmax training).
        smooth: added to numerator and denominator (nnU-Net: 1e-5).
        ddp: gather the batch sums across processes (batch Dice under DDP, as nnU-Net).
    """

    def __init__(self, batch_dice: bool = False, do_bg: bool = False, smooth: float = 1e-5, ddp: bool = False):
        super().__init__()
        self.batch_dice, self.do_bg, self.smooth, self.ddp = batch_dice, do_bg, smooth, ddp

    def forward(self, probabilities: torch.Tensor, target: torch.Tensor,
                sample_weights: torch.Tensor | None = None) -> torch.Tensor:
        """probabilities, target: (B, C, ...); sample_weights: (B,) or None (all 1). Returns a scalar."""
        axes = tuple(range(2, probabilities.ndim))
        if not self.do_bg:
            probabilities, target = probabilities[:, 1:], target[:, 1:]
        target = target.to(torch.float32)
        intersect = (probabilities * target).sum(axes, dtype=torch.float32)
        sum_pred = probabilities.sum(axes, dtype=torch.float32)
        with torch.no_grad():
            sum_gt = target.sum(axes, dtype=torch.float32)
        if self.batch_dice:
            if sample_weights is not None:
                w = sample_weights.to(intersect)[:, None]
                intersect, sum_pred, sum_gt = intersect * w, sum_pred * w, sum_gt * w
            if self.ddp:
                from nnunetv2.utilities.ddp_allgather import AllGatherGrad

                intersect, sum_pred, sum_gt = (AllGatherGrad.apply(t).sum(0, dtype=torch.float32)
                                               for t in (intersect, sum_pred, sum_gt))
            intersect, sum_pred, sum_gt = intersect.sum(0), sum_pred.sum(0), sum_gt.sum(0)
        dice = (2 * intersect + self.smooth) / (sum_gt + sum_pred + float(self.smooth)).clamp_min(1e-8)
        if not self.batch_dice and sample_weights is not None:
            dice = dice * sample_weights.to(dice)[:, None]
        return -dice.mean()


def _weighted_sample_mean(per_voxel: torch.Tensor, sample_weights: torch.Tensor | None) -> torch.Tensor:
    """Mean over all voxels and samples of (B, ...) values, each sample scaled by its weight."""
    per_sample = per_voxel.flatten(1).mean(1)
    if sample_weights is not None:
        per_sample = per_sample * sample_weights.to(per_sample)
    return per_sample.mean()


class SoftTargetLoss(nn.Module):
    """dice * soft Dice + ce * soft CE + l1 * L1 (pseudo samples) on logits and a soft one-hot target.

    The sources of the samples in the next batch are given with :meth:`set_batch_sources` (the
    trainer calls it with the batch's case keys before each step: nnU-Net calls a loss with
    (output, target) only, and deep supervision calls it once per scale).

    Args:
        config: term and source weights, the Dice's smooth.
        batch_dice, ddp: as :class:`SoftDiceLoss` (background excluded, as nnU-Net).
    """

    def __init__(self, config: StudentLossConfig = StudentLossConfig(), batch_dice: bool = False,
                 ddp: bool = False):
        super().__init__()
        self.config = config
        self.dice = SoftDiceLoss(batch_dice=batch_dice, do_bg=False, smooth=config.dice_smooth, ddp=ddp)
        self._is_pseudo: torch.Tensor | None = None

    def set_batch_sources(self, is_pseudo) -> None:
        """Sources of the next batch's samples: a (B,) bool sequence (True = pseudo), None = all strong."""
        self._is_pseudo = None if is_pseudo is None else torch.as_tensor(is_pseudo, dtype=torch.bool)

    def _sample_weights(self, batch_size: int, device) -> tuple[torch.Tensor | None, torch.Tensor]:
        is_pseudo = self._is_pseudo
        if is_pseudo is None:
            is_pseudo = torch.zeros(batch_size, dtype=torch.bool)
        if len(is_pseudo) != batch_size:
            raise RuntimeError(f"set_batch_sources was given {len(is_pseudo)} sources for a batch of "
                               f"{batch_size}; call it with the keys of this batch")
        is_pseudo = is_pseudo.to(device)
        c = self.config
        if c.strong == c.pseudo == 1.0:
            return None, is_pseudo
        weights = torch.where(is_pseudo, torch.tensor(c.pseudo, device=device),
                              torch.tensor(c.strong, device=device))
        return weights, is_pseudo

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """logits (B, 2, ...); target (B, 1, ...) foreground probability or (B, 2, ...) soft one-hot.
        Returns a scalar."""
        if target.shape[1] == 1 and logits.shape[1] == 2 and target.shape[2:] == logits.shape[2:]:
            target = soft_one_hot(target.to(torch.float32))
        if target.shape != logits.shape:
            raise ValueError(f"target shape {tuple(target.shape)} must be the output's {tuple(logits.shape)} "
                             f"(soft one-hot) or have one channel (foreground probability)")
        weights, is_pseudo = self._sample_weights(logits.shape[0], logits.device)
        target = target.to(torch.float32)
        c = self.config
        loss = logits.new_zeros((), dtype=torch.float32)
        log_p = torch.log_softmax(logits.float(), dim=1)
        probabilities = log_p.exp()
        if c.dice:
            loss = loss + c.dice * self.dice(probabilities, target, weights)
        if c.ce:
            loss = loss + c.ce * _weighted_sample_mean(-(target * log_p).sum(1), weights)
        if c.l1 and bool(is_pseudo.any()):
            # the mean over the pseudo samples only: its weight does not depend on how many strong
            # samples share the batch
            l1 = (probabilities[:, 1:] - target[:, 1:]).abs().sum(1).flatten(1).mean(1)[is_pseudo]
            if weights is not None:
                l1 = l1 * weights[is_pseudo].to(l1)
            loss = loss + c.l1 * l1.mean()
        return loss
