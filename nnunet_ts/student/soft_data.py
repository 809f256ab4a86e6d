"""Loading soft targets with nnU-Net's data loader, unchanged: the soft target rides as a seg channel.

nnU-Net's data loader casts ``seg`` to int16. A probability map cast to int16 is lost, but its 8-bit
quantisation ``round(255 p)`` (how it is stored, ``soft_targets.quantize``) is an integer from 0 to 255
and survives the cast exactly. So :class:`SoftTargetDataset` hands the loader each pseudo case's stored
soft target as a second channel of ``seg`` (``nnunet.seg_channel_dataset``): it is cropped and padded
exactly like the mask, at 2 bytes a voxel. The augmentation
pipeline moves it out of the segmentation first thing, before anything interpolates labels
(``soft_transforms.StashSoftTargetTransform``), the way nnU-Net's cascade carries the previous
stage's segmentation as seg channel 1. Strong cases keep a one-channel ``seg``, so the channel count
tells the pipeline a case's source.

``source_weighted_identifiers`` draws strong and pseudo cases at a chosen ratio through the same
loader: it repeats identifiers so that nnU-Net's uniform draw hits them with the wanted probability.
"""
from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from math import gcd

from nnunet_ts.nnunet.seg_channel_dataset import ExtraSegChannelDataset
from nnunet_ts.student.soft_targets import soft_target_file


class SoftTargetDataset(ExtraSegChannelDataset):
    """Wraps an nnU-Net dataset (blosc2 or numpy): pseudo cases load with their soft target as seg channel 1.

    Args:
        dataset: an ``nnUNetBaseDataset`` of the configuration's data folder.
        pseudo_cases: identifiers whose soft target (``<case>_soft.npy``) is stacked onto the seg.
        identifiers: what the data loader draws from (default: the dataset's; may repeat cases,
            see :func:`source_weighted_identifiers`).
    """

    def __init__(self, dataset, pseudo_cases, identifiers: Sequence[str] | None = None):
        self.pseudo_cases = frozenset(pseudo_cases)
        super().__init__(dataset, soft_target_file, self.pseudo_cases, identifiers)


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

