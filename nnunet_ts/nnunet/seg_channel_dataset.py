"""One more per-voxel target through nnU-Net's data loader, unchanged: it rides as an extra ``seg`` channel.

nnU-Net's ``nnUNetDataLoader`` (nnunetv2 2.8, ``training/dataloading/data_loader.py``) crops ``data``
and ``seg`` of a case with the same box and pads ``seg`` with -1, casting it to int16, then runs the
augmentation pipeline on ``image`` and ``segmentation``. A uint8 array of the case's preprocessed grid
(a quantised soft target, a 0/1 segbox) survives that cast exactly. :class:`ExtraSegChannelDataset`
wraps an nnU-Net dataset (it mirrors ``nnUNetBaseDataset.load_case``) and appends such an array, stored
as ``.npy`` beside the case, to the ``seg`` of chosen cases, lazily, so the loader crops and pads it
exactly like the mask; the augmentation pipeline takes it off again first thing, the way nnU-Net's
cascade carries the previous stage's segmentation as seg channel 1.
"""
from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from pathlib import Path

import numpy as np


class StackedChannel:
    """A case's seg (C, z, y, x) with a stored uint8 (z, y, x) array as channel C, lazily.

    Only what nnU-Net's ``crop_and_pad_nd`` uses: ``shape``, ``ndim`` and ``[slices]`` (channel slice
    first), which returns int16 (C + 1, ...).
    """

    def __init__(self, seg, extra_uint8: np.ndarray, what: str = "soft target",
                 fix: str = "preprocess the soft targets again (nnunet_ts soft-targets ... --overwrite)"):
        if tuple(seg.shape[1:]) != tuple(extra_uint8.shape):
            raise ValueError(f"{what} shape {tuple(extra_uint8.shape)} differs from the case's "
                             f"{tuple(seg.shape[1:])}; {fix}")
        self._seg, self._extra = seg, extra_uint8
        self.shape = (seg.shape[0] + 1, *seg.shape[1:])
        self.ndim = len(self.shape)

    def __getitem__(self, index):
        index = index if isinstance(index, tuple) else (index,)
        if index and index[0] != slice(None):
            raise IndexError("StackedChannel supports slicing all channels only")
        spatial = index[1:]
        seg = np.asarray(self._seg[(slice(None), *spatial)])
        out = np.empty((self.shape[0], *seg.shape[1:]), dtype=np.int16)
        out[:-1] = seg
        out[-1] = self._extra[spatial]
        return out


class ExtraSegChannelDataset:
    """Wraps an nnU-Net dataset (blosc2 or numpy, or another of these): ``cases`` load with one more seg channel.

    Args:
        dataset: the wrapped dataset (``identifiers``, ``source_folder``, ``load_case``).
        channel_file: ``(source_folder, identifier) -> .npy path`` of the extra channel.
        cases: the cases that get it; None = every case.
        identifiers: what the data loader draws from (default: the dataset's; may repeat cases).
        what, fix: the channel's name and how to make it again, for error messages.
    """

    def __init__(self, dataset, channel_file: Callable[[str | Path, str], Path],
                 cases: Collection[str] | None = None, identifiers: Sequence[str] | None = None,
                 what: str = "soft target",
                 fix: str = "preprocess the soft targets again (nnunet_ts soft-targets ... --overwrite)"):
        self.dataset = dataset
        self.source_folder = dataset.source_folder
        self.identifiers = list(dataset.identifiers if identifiers is None else identifiers)
        self._channel_file, self._cases, self._what, self._fix = channel_file, cases, what, fix
        self._maps: dict[str, np.ndarray] = {}  # memory maps, opened once per process

    def __getitem__(self, identifier):
        return self.load_case(identifier)

    def load_case(self, identifier):
        """(data, seg (+ the extra channel), seg_prev, properties), as nnU-Net's ``load_case``."""
        data, seg, seg_prev, properties = self.dataset.load_case(identifier)
        if self._cases is None or identifier in self._cases:
            extra = self._maps.get(identifier)
            if extra is None:
                extra = np.load(self._channel_file(self.source_folder, identifier), mmap_mode="r")
                self._maps[identifier] = extra
            seg = StackedChannel(seg, extra, self._what, self._fix)
        return data, seg, seg_prev, properties
