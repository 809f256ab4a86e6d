"""Loading segbox targets with nnU-Net's data loader, unchanged: the segbox rides as the last seg channel.

As the soft target (``soft_data``), each case's preprocessed segbox (``<case>_segbox.npy``, uint8 0/1,
``segbox_targets``) is stacked lazily onto ``seg``, so nnU-Net's loader crops and pads it with the
mask's box (padding -1). The loader then hands the pipeline ``segmentation`` = [mask, segbox] for
strong cases and [mask, soft target (0-255), segbox] for pseudo cases;
``segbox_target_transforms.SegboxOutOfSegmentationTransform`` takes the last channel off first thing.
"""
from __future__ import annotations

from nnunet_ts.dual_decoder.segbox_targets import segbox_target_file
from nnunet_ts.nnunet.seg_channel_dataset import ExtraSegChannelDataset


class SegboxTargetDataset(ExtraSegChannelDataset):
    """Wraps a (soft-target) dataset: every case loads with its segbox as the last seg channel.

    Args:
        dataset: an ``nnUNetBaseDataset`` or ``soft_data.SoftTargetDataset`` (its ``identifiers``,
            possibly repeated for a source ratio, are kept).
    """

    def __init__(self, dataset):
        super().__init__(dataset, segbox_target_file, what="segbox target",
                         fix="delete the data folder's *_segbox.npy files; the trainer makes them again")
