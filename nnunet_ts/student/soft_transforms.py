"""Augmentation (batchgeneratorsv2) that keeps soft targets soft; targets become foreground probabilities.

A pseudo case arrives from the data loader with its soft target, quantised to 0-255, as the second
``segmentation`` channel (``soft_data.SoftTargetDataset``). batchgeneratorsv2 treats the
``regression_target`` key the way a probability map needs: the spatial transform interpolates it
linearly like the image (segmentations are interpolated as one-hot + argmax), mirroring flips it, and
every intensity transform skips it. So the student's pipeline is::

    StashSoftTargetTransform       segmentation[1] -> regression_target; the pseudo case's
                                   hard mask leaves (its job, choosing the patch, is done)
    ... nnU-Net's own transforms, unchanged (spatial, intensity, mirroring, deep supervision) ...
    SoftTargetToSegmentationTransform
        segmentation := foreground probability p (1, ...) float32 per deep-supervision scale:
        p = the soft target / 255, area-averaged to each scale's shape   (pseudo cases)
        p = nnU-Net's own augmented, nearest-downsampled mask      (strong cases: nnU-Net exactly)

Tensors are per sample: image (C, z, y, x); segmentation (1 or 2, z, y, x), one per scale at the end.
"""
from __future__ import annotations

import torch
from batchgeneratorsv2.transforms.base.basic_transform import BasicTransform

from nnunet_ts.student.soft_targets import QUANTIZATION_LEVELS


class StashSoftTargetTransform(BasicTransform):
    """Moves a pseudo case's soft target (segmentation channel 1, 0-255; -1 = padding) into
    ``regression_target`` as float32, still on the 0-255 scale (every later step is linear, so the
    division by 255 waits for the final, smaller patch); strong cases (one channel) pass unchanged.

    A pseudo case's hard mask has done its job once the loader has chosen the patch (foreground
    sampling): its target is the soft one. So the mask is dropped here and nnU-Net's label
    interpolation (one-hot + argmax, the costliest part of the spatial transform) skips it.

    Args:
        keep_hard_seg: keep the pseudo case's mask in ``segmentation`` (needed when the pipeline
            masks the image with it: plans with ``use_mask_for_norm``).
    """

    def __init__(self, keep_hard_seg: bool = False):
        super().__init__()
        self.keep_hard_seg = keep_hard_seg

    def apply(self, data_dict, **params):
        if data_dict.get("regression_target") is not None:
            raise RuntimeError("StashSoftTargetTransform needs the regression_target key free; it "
                               "carries the soft target through the augmentation")
        seg = data_dict["segmentation"]
        if seg.shape[0] == 2:
            # the loader pads with -1 beyond the image: background, before anything interpolates it
            data_dict["regression_target"] = seg[1:].to(torch.float32).clamp_(min=0)
            if self.keep_hard_seg:
                data_dict["segmentation"] = seg[:1]
            else:
                del data_dict["segmentation"]
        elif seg.shape[0] != 1:
            raise RuntimeError(f"expected a segmentation with 1 channel (+1 soft target), got {seg.shape[0]}")
        return data_dict


def area_downsample(soft: torch.Tensor, shape) -> torch.Tensor:
    """(c, z, y, x) -> (c, *shape): each output voxel is the mean of the input voxels it covers."""
    if tuple(soft.shape[1:]) == tuple(shape):
        return soft
    factors = [a // b for a, b in zip(soft.shape[1:], shape)]
    if len(shape) in (2, 3) and all(f * b == a for f, a, b in zip(factors, soft.shape[1:], shape)):
        pool = torch.nn.functional.avg_pool3d if len(shape) == 3 else torch.nn.functional.avg_pool2d
        return pool(soft[None], factors)[0]  # integer factors: the same means, twice as fast
    return torch.nn.functional.interpolate(soft[None], size=tuple(shape), mode="area")[0]


class SoftTargetToSegmentationTransform(BasicTransform):
    """Last transform: ``segmentation`` becomes the float32 foreground probability (1, ...) at every scale.

    Args:
        ds_scales: nnU-Net's deep-supervision scales (as given to ``DownsampleSegForDSTransform``;
            None without deep supervision). Output: a list with one tensor per scale, or one tensor.
            A scale's shape is ``round(patch * scale)``, nnU-Net's rule; each scale is averaged from
            the full resolution (no compounding).
    """

    def __init__(self, ds_scales=None):
        super().__init__()
        self.ds_scales = ds_scales

    def apply(self, data_dict, **params):
        soft = data_dict.pop("regression_target", None)
        if soft is None:  # strong: nnU-Net's own (augmented, nearest-downsampled) mask
            seg = data_dict["segmentation"]
            scales = seg if isinstance(seg, (list, tuple)) else [seg]
            out = [(s[:1] > 0).to(torch.float32) for s in scales]
        else:
            soft = soft.to(torch.float32).clamp_(0.0, QUANTIZATION_LEVELS).mul_(1.0 / QUANTIZATION_LEVELS)
            out = [area_downsample(soft, shape) for shape in self._shapes(soft.shape[1:])]
        data_dict["segmentation"] = out if self.ds_scales is not None else out[0]
        return data_dict

    def _shapes(self, shape):
        if self.ds_scales is None:
            return [tuple(shape)]
        scales = [s if isinstance(s, (tuple, list)) else [s] * len(shape) for s in self.ds_scales]
        return [tuple(round(i * j) for i, j in zip(shape, s)) for s in scales]


def wrap_pipeline(pipeline, deep_supervision_scales, keep_hard_seg: bool = False):
    """nnU-Net's ``ComposeTransforms`` with the stash first and the probability target last."""
    pipeline.transforms = [StashSoftTargetTransform(keep_hard_seg), *pipeline.transforms,
                           SoftTargetToSegmentationTransform(deep_supervision_scales)]
    return pipeline
