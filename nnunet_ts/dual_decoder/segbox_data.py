"""Loading segbox targets with nnU-Net's data loader, unchanged: the segbox rides as the last seg channel.

As the soft target (``soft_data``), each case's preprocessed segbox (``<case>_segbox.npy``, uint8 0/1,
``segbox_targets``) is stacked lazily onto ``seg``, so nnU-Net's loader crops and pads it with the
mask's box (padding -1). The loader then hands the pipeline ``segmentation`` = [mask, segbox] for
strong cases and [mask, soft target (0-255), segbox] for pseudo cases;
``segbox_target_transforms.SegboxOutOfSegmentationTransform`` takes the last channel off first thing.
"""
from __future__ import annotations

import numpy as np

from nnunet_ts.dual_decoder.segbox_targets import segbox_target_file
from nnunet_ts.student.soft_data import StackedSoftChannel


class SegboxTargetDataset:
    """Wraps a (soft-target) dataset: every case loads with its segbox as the last seg channel.

    Args:
        dataset: an ``nnUNetBaseDataset`` or ``soft_data.SoftTargetDataset`` (its ``identifiers``,
            possibly repeated for a source ratio, are kept).
    """

    def __init__(self, dataset):
        self.dataset = dataset
        self.source_folder = dataset.source_folder
        self.identifiers = list(dataset.identifiers)
        self._segbox: dict[str, np.ndarray] = {}  # memory maps, opened once per process

    def __getitem__(self, identifier):
        return self.load_case(identifier)

    def load_case(self, identifier):
        """(data, seg + segbox channel, seg_prev, properties), as nnU-Net's ``load_case``."""
        data, seg, seg_prev, properties = self.dataset.load_case(identifier)
        segbox = self._segbox.get(identifier)
        if segbox is None:
            segbox = np.load(segbox_target_file(self.source_folder, identifier), mmap_mode="r")
            self._segbox[identifier] = segbox
        # StackedSoftChannel appends any uint8 (z, y, x) array as one more int16 seg channel
        return data, StackedSoftChannel(seg, segbox), seg_prev, properties
