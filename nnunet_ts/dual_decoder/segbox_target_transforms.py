"""The segbox target through the student's augmentation: moved with the CT, never intensity-augmented.

The dual-decoder student's loader hands every case its segbox as the **last** ``segmentation``
channel (0/1, -1 = padding; ``segbox_data.SegboxTargetDataset``), after the mask and, for pseudo
cases, the soft target. The single-output student's pipeline (``soft_transforms.wrap_pipeline``) is
kept and four transforms are inserted around its two ends::

    SegboxOutOfSegmentationTransform    segmentation[-1] -> "segbox" (float 0/1; padding -> 0)
    StashSoftTargetTransform            (the student's, unchanged)
    SegboxIntoRegressionTargetTransform regression_target := [soft target,] segbox
    ... nnU-Net's own transforms, unchanged: the spatial transform interpolates regression_target
        linearly like the CT, mirroring flips it, intensity transforms skip it ...
    SegboxOutOfRegressionTargetTransform regression_target[-1] >= 0.5 -> "segbox" (binary again)
    SoftTargetToSegmentationTransform   (the student's, unchanged)
    SegboxIntoTargetTransform           segmentation := [foreground probability, segbox] per scale;
                                        the segbox downsampled like nnU-Net's masks (nearest-exact)

Riding as ``regression_target`` (the box teacher's trick, ``segbox_transforms``) is linear
interpolation and a threshold at 0.5 — the rule nnU-Net's label interpolation applies to a binary
mask — at the cost of one more image channel instead of nnU-Net's one-hot label path. The soft target
is one channel, so the channel count of ``regression_target`` tells a pseudo sample (2) from a strong
one (1). Deep-supervision scales use nearest-exact, as nnU-Net does for the mask, so a strong case's
segbox contains its mask at every scale wherever it does at full resolution.

Tensors are per sample: (C, z, y, x).
"""
from __future__ import annotations

import torch
from batchgeneratorsv2.transforms.base.basic_transform import BasicTransform

from nnunet_ts.student.soft_transforms import SoftTargetToSegmentationTransform, StashSoftTargetTransform
from nnunet_ts.teacher.segbox_channel import SEGBOX_THRESHOLD

_KEY = "segbox"


class SegboxOutOfSegmentationTransform(BasicTransform):
    """segmentation (k + 1, ...) -> segmentation (k, ...) and ``segbox`` (1, ...) float32 0/1."""

    def apply(self, data_dict, **params):
        seg = data_dict["segmentation"]
        if seg.shape[0] < 2:
            raise RuntimeError(f"the dual-decoder student expects the segbox as an extra segmentation "
                               f"channel, got {seg.shape[0]} channel(s); load with SegboxTargetDataset")
        data_dict[_KEY] = seg[-1:].to(torch.float32).clamp_(min=0)  # -1 = beyond the image: no box
        data_dict["segmentation"] = seg[:-1]
        return data_dict


class SegboxIntoRegressionTargetTransform(BasicTransform):
    """Appends ``segbox`` to ``regression_target`` (or makes it the regression target)."""

    def apply(self, data_dict, **params):
        segbox = data_dict.pop(_KEY)
        soft = data_dict.get("regression_target")
        data_dict["regression_target"] = segbox if soft is None else torch.cat([soft, segbox.to(soft)])
        return data_dict


class SegboxOutOfRegressionTargetTransform(BasicTransform):
    """regression_target[-1] -> ``segbox`` thresholded at 0.5; a segbox-only regression target leaves."""

    def apply(self, data_dict, **params):
        regression_target = data_dict.pop("regression_target")
        data_dict[_KEY] = (regression_target[-1:] >= SEGBOX_THRESHOLD).to(torch.float32)
        if regression_target.shape[0] > 1:  # pseudo: the soft target stays for the student's last step
            data_dict["regression_target"] = regression_target[:-1]
        return data_dict


class SegboxIntoTargetTransform(BasicTransform):
    """segmentation (1, ...) per scale -> (2, ...): channel 1 the segbox at that scale's shape."""

    def apply(self, data_dict, **params):
        segbox = data_dict.pop(_KEY)
        seg = data_dict["segmentation"]
        scales = seg if isinstance(seg, (list, tuple)) else [seg]
        out = []
        for s in scales:
            box = segbox if tuple(s.shape[1:]) == tuple(segbox.shape[1:]) else torch.nn.functional.interpolate(
                segbox[None], size=tuple(s.shape[1:]), mode="nearest-exact")[0]
            out.append(torch.cat([s, box.to(s.dtype)]))
        data_dict["segmentation"] = out if isinstance(seg, (list, tuple)) else out[0]
        return data_dict


def carry_segbox_target(pipeline):
    """Inserts the segbox transforms into a student pipeline (``soft_transforms.wrap_pipeline``'s).

    Raises:
        ValueError: the pipeline lacks the student's first or last transform.
    """
    transforms = list(pipeline.transforms)
    if not (transforms and isinstance(transforms[0], StashSoftTargetTransform)
            and isinstance(transforms[-1], SoftTargetToSegmentationTransform)):
        raise ValueError("carry_segbox_target needs the soft-label student's pipeline "
                         "(soft_transforms.wrap_pipeline): stash first, probability target last")
    pipeline.transforms = [SegboxOutOfSegmentationTransform(), transforms[0],
                           SegboxIntoRegressionTargetTransform(), *transforms[1:-1],
                           SegboxOutOfRegressionTargetTransform(), transforms[-1],
                           SegboxIntoTargetTransform()]
    return pipeline
