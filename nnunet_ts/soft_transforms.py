"""Augmentation (batchgeneratorsv2) that keeps soft targets soft; targets become soft one-hot.

A pseudo case arrives from the data loader with its soft target as the last image channel
(``soft_data.SoftTargetDataset``). batchgeneratorsv2 treats the ``regression_target`` key the way a
probability map needs: the spatial transform interpolates it linearly like the image (the
segmentation is interpolated as one-hot + argmax), mirroring flips it, and every intensity transform
skips it. So the student's pipeline is::

    StashSoftTargetTransform       image[C] -> regression_target (pseudo cases; strong: nothing)
    ... nnU-Net's own transforms, unchanged (spatial, intensity, mirroring, deep supervision) ...
    SoftTargetToSegmentationTransform
        segmentation := soft one-hot [1 - p, p] per deep-supervision scale, where
        p = the soft target, area-averaged to each scale's shape   (pseudo cases)
        p = nnU-Net's own augmented, nearest-downsampled mask      (strong cases: nnU-Net exactly)

Tensors are per sample: image (C, z, y, x); segmentation (1, z, y, x) or one per scale.
"""
from __future__ import annotations

import torch
from batchgeneratorsv2.transforms.base.basic_transform import BasicTransform


class StashSoftTargetTransform(BasicTransform):
    """Moves the soft target (image channel ``num_image_channels``) into ``regression_target``.

    Args:
        num_image_channels: channels of the network input (the CT: 1). An image with one more
            channel carries a soft target; one with exactly this many is a strong case.
    """

    def __init__(self, num_image_channels: int):
        super().__init__()
        self.num_image_channels = num_image_channels

    def apply(self, data_dict, **params):
        if data_dict.get("regression_target") is not None:
            raise RuntimeError("StashSoftTargetTransform needs the regression_target key free; it "
                               "carries the soft target through the augmentation")
        image = data_dict["image"]
        n = self.num_image_channels
        if image.shape[0] == n + 1:
            data_dict["image"], data_dict["regression_target"] = image[:n], image[n:]
        elif image.shape[0] != n:
            raise RuntimeError(f"expected {n} image channels (+1 soft target), got {image.shape[0]}")
        return data_dict


def area_downsample(soft: torch.Tensor, shape) -> torch.Tensor:
    """(c, z, y, x) -> (c, *shape) by averaging the input voxels each output voxel covers."""
    if tuple(soft.shape[1:]) == tuple(shape):
        return soft
    return torch.nn.functional.interpolate(soft[None].float(), size=tuple(shape), mode="area")[0]


class SoftTargetToSegmentationTransform(BasicTransform):
    """Last transform: ``segmentation`` becomes float32 soft one-hot (2, ...) at every scale.

    Runs after nnU-Net's ``DownsampleSegForDSTransform`` (a list of scales) or without deep
    supervision (one tensor); the output has the same structure. See the module docstring.
    """

    def apply(self, data_dict, **params):
        seg = data_dict["segmentation"]
        soft = data_dict.pop("regression_target", None)
        scales = seg if isinstance(seg, (list, tuple)) else [seg]
        out = []
        for s in scales:
            if soft is None:
                p = (s[:1] > 0).to(torch.float32)
            else:
                p = area_downsample(soft, s.shape[1:]).to(torch.float32).clamp_(0.0, 1.0)
            out.append(torch.cat([1.0 - p, p], dim=0))
        data_dict["segmentation"] = out if isinstance(seg, (list, tuple)) else out[0]
        return data_dict


def wrap_pipeline(pipeline, num_image_channels: int):
    """nnU-Net's ``ComposeTransforms`` with the stash first and the soft one-hot conversion last."""
    pipeline.transforms = [StashSoftTargetTransform(num_image_channels), *pipeline.transforms,
                           SoftTargetToSegmentationTransform()]
    return pipeline
