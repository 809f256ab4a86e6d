"""What ``nnunet_ts predict`` does to a tumour probability map after the network.

The flag names ``--threshold``, ``--lung-filter`` and ``--radius`` are LungTumorMask's (the paper's
released tool) and mean what they mean there:

* threshold: tumour where probability > threshold, threshold in [0, 1] (at 0.5 this is nnU-Net's
  argmax of two classes, ties to background);
* lung filter: voxel-wise, everything outside the lung mask set to 0 (works on probabilities too);
* radius: per axial slice, a 2D binary closing with a disk of this radius (voxels).

Two operations of our own keep their own names: :func:`keep_lung_components` (whole 3D tumour
components that touch the lungs are kept, nothing is cut) and :func:`smooth` (3D closing then
opening with a ball).

Arrays are (z, y, x) as SimpleITK gives them.
"""
from __future__ import annotations

import numpy as np


def threshold_mask(probability: np.ndarray, threshold: float) -> np.ndarray:
    """uint8 mask, 1 where ``probability > threshold``."""
    return (np.asarray(probability) > threshold).astype(np.uint8)


def lung_filter(array: np.ndarray, lungs: np.ndarray) -> np.ndarray:
    """``array`` (mask or probabilities) with every voxel outside the lungs set to 0; same dtype."""
    array = np.asarray(array)
    return np.where(np.asarray(lungs) > 0, array, 0).astype(array.dtype)


def keep_lung_components(mask: np.ndarray, lungs: np.ndarray) -> np.ndarray:
    """Keep the tumour components (3D, 26-connected) that touch the lungs, whole."""
    import cc3d

    labels = cc3d.connected_components((np.asarray(mask) > 0).astype(np.uint8), connectivity=26)
    touching = np.unique(labels[(np.asarray(lungs) > 0) & (labels > 0)])
    return np.isin(labels, touching[touching > 0]).astype(np.uint8)


def disk(radius: int) -> np.ndarray:
    """Boolean 2D disk (2r+1, 2r+1): offsets with dy^2 + dx^2 <= r^2."""
    r = np.arange(-radius, radius + 1)
    return (r[:, None] ** 2 + r[None, :] ** 2) <= radius ** 2


def close_slices(mask: np.ndarray, radius: int) -> np.ndarray:
    """Per axial slice, binary closing with a disk of ``radius`` voxels (LungTumorMask's ``--radius``).

    The slice is padded by the radius first, so the closing does not grow objects at the border.
    """
    from scipy import ndimage

    mask = np.asarray(mask) > 0
    if radius <= 0:
        return mask.astype(np.uint8)
    structure = disk(radius)[None]  # (1, 2r+1, 2r+1): no reach across slices
    pad = ((0, 0), (radius, radius), (radius, radius))
    closed = ndimage.binary_closing(np.pad(mask, pad), structure=structure)
    return closed[:, radius:-radius, radius:-radius].astype(np.uint8)


def smooth(mask: np.ndarray, radius: int) -> np.ndarray:
    """3D binary closing then opening with a ball of ``radius`` voxels (fills dents, cuts spurs)."""
    from scipy import ndimage

    if radius <= 0:
        return (np.asarray(mask) > 0).astype(np.uint8)
    r = np.arange(-radius, radius + 1)
    ball = (r[:, None, None] ** 2 + r[None, :, None] ** 2 + r[None, None, :] ** 2) <= radius ** 2
    padded = np.pad(np.asarray(mask) > 0, radius + 1)
    closed = ndimage.binary_closing(padded, structure=ball)
    opened = ndimage.binary_opening(closed, structure=ball)
    return opened[(slice(radius + 1, -(radius + 1)),) * 3].astype(np.uint8)
