"""Inference-time box restriction: the teacher's tumour probability outside the (dilated) segbox is 0.

The teacher is told where the tumour is; a prediction far from every box is a false positive by
construction (a vessel or the mediastinum mistaken for tumour). Restricting to the box plus a margin
removes those without touching anything near the annotation. The margin is in mm, measured in 3D
with the image spacing, so the same setting means the same thing on 0.7 mm and 5 mm slices; it lets
a lesion that pokes out of a slightly loose or shifted box (the perturbations of Sun et al.) keep its
edge, and reaches neighbouring slices the annotator left without a box.

Arrays are (z, y, x) like SimpleITK's; spacing is (z, y, x) in mm.
"""
from __future__ import annotations

import numpy as np

DEFAULT_MARGIN_MM = 5.0


def box_region(segbox: np.ndarray, spacing_zyx: tuple[float, float, float],
               margin_mm: float = DEFAULT_MARGIN_MM) -> np.ndarray:
    """Voxels within ``margin_mm`` (Euclidean, mm) of the segbox; bool, shape of ``segbox``.

    The segbox is foreground where > 0.5 (a resampled box with fractional edges counts to the half).
    An empty segbox gives an empty region: no box, no tumour.
    """
    from scipy.ndimage import distance_transform_edt

    if margin_mm < 0:
        raise ValueError(f"margin_mm must be >= 0, got {margin_mm}")
    box = np.asarray(segbox) > 0.5
    if margin_mm == 0 or not box.any():
        return box
    # The distance transform only has to cover the box's bounding box plus the margin: on a
    # 512 x 512 x 200 CT with a few lesions that is a small fraction of the volume.
    reach = [int(np.ceil(margin_mm / s)) for s in spacing_zyx]
    nonzero = np.nonzero(box)
    lo = [max(0, int(idx.min()) - r) for idx, r in zip(nonzero, reach)]
    hi = [min(n, int(idx.max()) + r + 1) for idx, n, r in zip(nonzero, box.shape, reach)]
    window = tuple(slice(a, b) for a, b in zip(lo, hi))
    region = np.zeros_like(box)
    region[window] = distance_transform_edt(~box[window], sampling=spacing_zyx) <= margin_mm
    return region


def restrict_probabilities(probabilities: np.ndarray, region: np.ndarray) -> np.ndarray:
    """Set the tumour probability to 0 outside ``region``; returns a new array.

    Args:
        probabilities: (z, y, x) foreground probability, or (C, z, y, x) class probabilities as
            nnU-Net saves them (class 0 = background): outside the region the background
            probability becomes 1 and every other class 0, so each voxel still sums to 1.
        region: bool (z, y, x), e.g. from :func:`box_region`.
    Raises:
        ValueError: the spatial shapes differ.
    """
    probabilities = np.asarray(probabilities)
    if probabilities.shape[-3:] != region.shape:
        raise ValueError(f"probabilities {probabilities.shape} and box region {region.shape} "
                         f"are not on the same grid")
    restricted = probabilities.copy()
    outside = ~region
    if restricted.ndim == 3:
        restricted[outside] = 0
    else:
        restricted[:, outside] = 0
        restricted[0, outside] = 1
    return restricted


def restrict_labels(labels: np.ndarray, region: np.ndarray) -> np.ndarray:
    """A label map with every voxel outside ``region`` set to background (0); a new array."""
    if labels.shape != region.shape:
        raise ValueError(f"labels {labels.shape} and box region {region.shape} are not on the same grid")
    return np.where(region, labels, 0).astype(labels.dtype)
