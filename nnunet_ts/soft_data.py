"""Loading soft targets with nnU-Net's data loader, unchanged: the soft target rides as an image channel.

nnU-Net's ``nnUNetDataLoader`` crops ``data`` (float) and ``seg`` (cast to int16) with the same
box, then runs the augmentation pipeline on ``image`` and ``segmentation``. A probability map cast to
int16 is lost, so :class:`SoftTargetDataset` hands the loader each pseudo case's soft target as one
extra channel *of the image*: it is cropped and padded (with 0, background) exactly like the CT, in
float. The augmentation pipeline then moves it out of the image first thing
(``soft_transforms.StashSoftTargetTransform``). Strong cases get no extra channel: their target is
nnU-Net's own mask, so the channel count tells the pipeline the case's source.

``source_weighted_identifiers`` draws strong and pseudo cases at a chosen ratio through the same
loader: it repeats identifiers so that nnU-Net's uniform draw hits them with the wanted probability.
"""
from __future__ import annotations

from fractions import Fraction
from math import gcd
from typing import Sequence

import numpy as np

from nnunet_ts.soft_targets import QUANTIZATION_LEVELS, soft_target_file


class StackedSoftChannel:
    """A case's data (C, z, y, x) with its stored soft target as channel C, read lazily on slicing.

    Only what ``crop_and_pad_nd`` uses: ``shape`` and ``[slices]`` (channel slice first), which
    returns float32 (C + 1, ...): the data's patch and the dequantised soft target's patch.
    """

    def __init__(self, data, soft_uint8: np.ndarray):
        if tuple(data.shape[1:]) != tuple(soft_uint8.shape):
            raise ValueError(f"soft target shape {tuple(soft_uint8.shape)} differs from the data's "
                             f"{tuple(data.shape[1:])}; preprocess the soft targets again "
                             f"(nnunet_ts soft-targets ... --overwrite)")
        self._data, self._soft = data, soft_uint8
        self.shape = (data.shape[0] + 1, *data.shape[1:])
        self.ndim = len(self.shape)

    def __getitem__(self, index):
        index = index if isinstance(index, tuple) else (index,)
        if index and index[0] != slice(None):
            raise IndexError("StackedSoftChannel supports slicing all channels only")
        spatial = index[1:]
        data = np.asarray(self._data[(slice(None), *spatial)], dtype=np.float32)
        soft = np.asarray(self._soft[spatial], dtype=np.float32)[None]
        soft *= np.float32(1.0 / QUANTIZATION_LEVELS)
        return np.concatenate([data, soft], axis=0)


class SoftTargetDataset:
    """Wraps an nnU-Net dataset (blosc2 or numpy): pseudo cases load with their soft target channel.

    Args:
        dataset: an ``nnUNetBaseDataset`` of the configuration's data folder.
        pseudo_cases: identifiers whose soft target (``<case>_soft.npy``) is stacked onto the data.
        identifiers: what the data loader draws from (default: the dataset's; may repeat cases,
            see :func:`source_weighted_identifiers`).
    """

    def __init__(self, dataset, pseudo_cases, identifiers: Sequence[str] | None = None):
        self.dataset = dataset
        self.source_folder = dataset.source_folder
        self.pseudo_cases = frozenset(pseudo_cases)
        self.identifiers = list(dataset.identifiers if identifiers is None else identifiers)

    def __getitem__(self, identifier):
        return self.load_case(identifier)

    def load_case(self, identifier):
        """(data, seg, seg_prev, properties) as nnU-Net's ``load_case``; data + soft channel for pseudo."""
        data, seg, seg_prev, properties = self.dataset.load_case(identifier)
        if identifier in self.pseudo_cases:
            soft = np.load(soft_target_file(self.source_folder, identifier), mmap_mode="r")
            data = StackedSoftChannel(data, soft)
        return data, seg, seg_prev, properties


def source_weighted_identifiers(identifiers: Sequence[str], pseudo_cases, strong_fraction: float | None,
                                max_denominator: int = 100) -> list[str]:
    """Identifiers repeated so that a uniform draw picks a strong case with ``strong_fraction``.

    Within each source every case is equally likely. ``strong_fraction`` is used as the nearest
    fraction with denominator <= ``max_denominator`` (exact for 0.5, 0.25, 0.3, ...). None, or a set
    without one of the sources, gives the identifiers unchanged (nnU-Net's plain union).

    Raises:
        ValueError: ``strong_fraction`` outside (0, 1).
    """
    identifiers = list(identifiers)
    if strong_fraction is None:
        return identifiers
    if not 0.0 < strong_fraction < 1.0:
        raise ValueError(f"strong_fraction must be in (0, 1) or None, got {strong_fraction}")
    pseudo_cases = set(pseudo_cases)
    strong = [i for i in identifiers if i not in pseudo_cases]
    pseudo = [i for i in identifiers if i in pseudo_cases]
    if not strong or not pseudo:
        return identifiers
    fraction = Fraction(strong_fraction).limit_denominator(max_denominator)
    a, b = fraction.numerator, fraction.denominator
    # per strong case a / (b n_s), per pseudo case (b - a) / (b n_p): repeat counts in that ratio
    per_strong, per_pseudo = a * len(pseudo), (b - a) * len(strong)
    common = gcd(per_strong, per_pseudo)
    per_strong, per_pseudo = per_strong // common, per_pseudo // common
    return [i for i in identifiers for _ in range(per_pseudo if i in pseudo_cases else per_strong)]


def pseudo_case_ids(sources: dict[str, str], identifiers: Sequence[str]) -> list[str]:
    """The pseudo cases among ``identifiers`` (sources from ``student_dataset.read_sources``)."""
    return [i for i in identifiers if sources.get(i) == "pseudo"]

