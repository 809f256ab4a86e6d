"""Augmentation transforms (batchgeneratorsv2) that keep the segbox channel a box.

nnU-Net's training pipeline applies intensity transforms (noise, blur, brightness, contrast, low
resolution, gamma) to every image channel. A box channel must move with the CT (spatial transform,
mirroring) but never have its values changed. batchgeneratorsv2 has a key with exactly that
treatment: ``regression_target`` is interpolated and mirrored like the image, and intensity
transforms skip it. So the teacher's pipeline is::

    StashSegboxTransform   image[segbox] -> regression_target (optionally perturbed boxes)
    ... nnU-Net's own transforms, unchanged ...
    RestoreSegboxTransform regression_target -> image[segbox], thresholded at 0.5 (binary again)

Tensors are per sample: (c, z, y, x).
"""
from __future__ import annotations

import numpy as np
import torch
from batchgeneratorsv2.transforms.base.basic_transform import BasicTransform

from nnunet_ts.boxes.perturbation import BoxPerturbation, perturb_segbox
from nnunet_ts.boxes.segbox import label_lesions
from nnunet_ts.teacher.segbox_channel import SEGBOX_THRESHOLD


class StashSegboxTransform(BasicTransform):
    """Moves image channel ``channel`` into ``regression_target``; perturbs its boxes at random first.

    Args:
        channel: index of the segbox channel in ``image``.
        perturbation: box perturbation applied with ``perturbation.probability`` per sample, before
            any spatial transform (the boxes are still axis-aligned rectangles then); None for exact
            boxes. Lesions are told apart by the sample's mask (``segmentation``), so the boxes of
            neighbouring lesions stay separate boxes.
        axial_axis: the spatial axis (0-2) of the axial slices in the preprocessed data: 0 unless
            nnU-Net's plans transpose the data (``transpose_forward.index(0)``).
    """

    def __init__(self, channel: int, perturbation: BoxPerturbation | None = None, axial_axis: int = 0):
        super().__init__()
        self.channel = channel
        self.perturbation = perturbation
        self.axial_axis = axial_axis

    def apply(self, data_dict, **params):
        if data_dict.get("regression_target") is not None:
            raise RuntimeError("StashSegboxTransform needs the regression_target key free; it carries "
                               "the segbox through the augmentation")
        image = data_dict["image"]
        segbox = image[self.channel:self.channel + 1]
        keep = [c for c in range(image.shape[0]) if c != self.channel]
        p = self.perturbation
        # the global numpy RNG, as batchgeneratorsv2's RandomTransform: nnU-Net seeds it per worker
        if p is not None and p.probability > 0 and np.random.uniform() < p.probability:
            rng = np.random.default_rng(np.random.randint(0, 2 ** 31 - 1))
            seg = data_dict.get("segmentation")
            lesions = None if seg is None else label_lesions(_numpy(seg[0]) > 0)[0]
            perturbed = perturb_segbox(_numpy(segbox[0]), p, rng, lesions=lesions, axial_axis=self.axial_axis)
            segbox = torch.as_tensor(perturbed[None], dtype=image.dtype)
        data_dict["image"] = image[keep]
        data_dict["regression_target"] = segbox
        return data_dict


def _numpy(array) -> np.ndarray:
    return array.numpy() if isinstance(array, torch.Tensor) else np.asarray(array)


class RestoreSegboxTransform(BasicTransform):
    """Puts ``regression_target`` back as image channel ``channel``, binary (>= 0.5 -> 1)."""

    def __init__(self, channel: int):
        super().__init__()
        self.channel = channel

    def apply(self, data_dict, **params):
        segbox = data_dict.pop("regression_target")
        image = data_dict["image"]
        segbox = (segbox >= SEGBOX_THRESHOLD).to(image.dtype)
        data_dict["image"] = torch.cat([image[:self.channel], segbox, image[self.channel:]], dim=0)
        return data_dict
