"""Regions of interest for ROI-mode pseudo-labelling: each box grown by a margin, merged where they meet,
and the context crop the teacher reads around each region.

Arrays are (z, y, x); spacing (z, y, x) in mm. A region is a tuple of three slices.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

Region = tuple[slice, slice, slice]


def box_regions(segbox: np.ndarray, spacing_zyx: Sequence[float], margin_mm: float,
                min_size_mm: Sequence[float] = (0.0, 0.0, 0.0)) -> list[Region]:
    """Disjoint regions covering every segbox component grown by ``margin_mm``.

    Each 3D connected component of the segbox (> 0.5) gives its bounding box grown by ``margin_mm``
    on every side and, where smaller, widened about its centre to ``min_size_mm`` (e.g. the
    teacher's patch in mm, so the network sees the context it was trained with); all clipped to the
    image. Overlapping or touching regions are merged into their common bounding box until none
    overlap, so pasting their predictions is unambiguous. An empty segbox gives no region.
    """
    from nnunet_ts.boxes.segbox import label_lesions

    labels, n = label_lesions(np.asarray(segbox) > 0.5, 26)
    if n == 0:
        return []
    shape = labels.shape
    grow = [int(np.ceil(margin_mm / s)) for s in spacing_zyx]
    min_voxels = [int(np.ceil(m / s)) for m, s in zip(min_size_mm, spacing_zyx)]
    boxes = []
    for component in _component_slices(labels, n):
        lo, hi = [], []
        for axis, sl in enumerate(component):
            a, b = sl.start - grow[axis], sl.stop + grow[axis]
            if b - a < min_voxels[axis]:
                extra = min_voxels[axis] - (b - a)
                a, b = a - extra // 2, b + extra - extra // 2
            lo.append(a)
            hi.append(b)
        boxes.append(_clip(lo, hi, shape))
    return [tuple(slice(a, b) for a, b in zip(lo, hi)) for lo, hi in _merge(boxes)]


def _component_slices(labels: np.ndarray, n: int) -> list[tuple[slice, ...]]:
    from scipy.ndimage import find_objects

    return [s for s in find_objects(labels, max_label=n) if s is not None]


def _clip(lo: list[int], hi: list[int], shape: Sequence[int]) -> tuple[list[int], list[int]]:
    """Shift a box inside the image where it can, then cut what is still outside."""
    new_lo, new_hi = [], []
    for a, b, n in zip(lo, hi, shape):
        if a < 0:
            a, b = 0, b - a
        if b > n:
            a, b = a - (b - n), n
        new_lo.append(max(a, 0))
        new_hi.append(min(b, n))
    return new_lo, new_hi


def _merge(boxes: list[tuple[list[int], list[int]]]) -> list[tuple[list[int], list[int]]]:
    boxes = [(list(lo), list(hi)) for lo, hi in boxes]
    merged = True
    while merged:
        merged = False
        for i in range(len(boxes)):
            for j in range(i + 1, len(boxes)):
                (alo, ahi), (blo, bhi) = boxes[i], boxes[j]
                if all(a0 <= b1 and b0 <= a1 for a0, a1, b0, b1 in zip(alo, ahi, blo, bhi)):
                    boxes[i] = ([min(a, b) for a, b in zip(alo, blo)], [max(a, b) for a, b in zip(ahi, bhi)])
                    del boxes[j]
                    merged = True
                    break
            if merged:
                break
    return sorted(boxes)


def context_crop(region: Region, shape: Sequence[int], spacing_zyx: Sequence[float],
                 context_mm: Sequence[float]) -> Region:
    """The crop the network reads to predict ``region``: the region grown by ``context_mm`` (z, y, x) on
    every side, clipped to the image (shape (z, y, x)).

    With half the network's patch (in mm) as context, every voxel of the region lies at least half a
    patch inside the crop where the image allows, so the sliding-window tiles that cover it see the
    surroundings the whole-volume prediction's tiles see; the crop is then at least one patch wide.
    """
    grow = [int(np.ceil(c / s)) for c, s in zip(context_mm, spacing_zyx)]
    return tuple(slice(max(r.start - g, 0), min(r.stop + g, n)) for r, g, n in zip(region, grow, shape))


def within(region: Region, crop: Region) -> Region:
    """``region`` in the coordinates of ``crop`` (which contains it)."""
    return tuple(slice(r.start - c.start, r.stop - c.start) for r, c in zip(region, crop))
