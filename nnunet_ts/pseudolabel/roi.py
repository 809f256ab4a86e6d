"""Regions of interest for ROI-mode pseudo-labelling: each box grown by a margin, merged where they meet,
and the context crop the teacher reads around each region.

Arrays are (z, y, x); spacing (z, y, x) in mm. A region is a tuple of three slices.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

Region = tuple[slice, slice, slice]
# how closely a crop's resampled grid is matched to the whole image's (input voxels): 0.05 left 43 of
# ~960 tumour voxels flipped where a box teacher was unsure (scripts/benchmarks/pseudolabel.py, case 0002)
ALIGNED_WITHIN = 0.01


def box_regions(segbox: np.ndarray, spacing_zyx: Sequence[float], margin_mm: float,
                min_size_mm: Sequence[float] = (0.0, 0.0, 0.0)) -> list[Region]:
    """Disjoint regions covering every segbox component grown by ``margin_mm``.

    Each 3D connected component of the segbox (> 0.5) gives its bounding box grown by ``margin_mm``
    on every side and, where smaller, widened about its centre to ``min_size_mm`` (e.g. the
    teacher's patch in mm, so the network sees the context it was trained with); all clipped to the
    image. Overlapping or touching regions are merged into their common bounding box until none
    overlap, so pasting their predictions is unambiguous. An empty segbox gives no region.
    """
    from nnunet_ts.boxes.segbox import label_lesions, occupied_bounds

    boxed = np.asarray(segbox) > 0.5
    cut = occupied_bounds(boxed)  # components found within the boxes' extent, not the whole grid
    if cut is None:
        return []
    labels, n = label_lesions(boxed[cut], 26)
    shape = boxed.shape
    grow = [int(np.ceil(margin_mm / s)) for s in spacing_zyx]
    min_voxels = [int(np.ceil(m / s)) for m, s in zip(min_size_mm, spacing_zyx)]
    boxes = []
    for component in _component_slices(labels, n):
        lo, hi = [], []
        for axis, sl in enumerate(component):
            a, b = sl.start + cut[axis].start - grow[axis], sl.stop + cut[axis].start + grow[axis]
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


def grid_offset(start: int, length: int, image_length: int, ratio: float) -> float:
    """How far (in input voxels, the largest over the crop) the samples of a crop resampled on its own
    lie from the samples of the whole image resampled, along one axis.

    nnU-Net resamples an axis of ``n`` voxels to ``round(n * ratio)`` (``ratio`` = input spacing / target
    spacing) with sample ``i`` at input coordinate ``(i + 0.5) * n / m - 0.5`` (skimage's ``resize``
    and nnU-Net's separate-z interpolation alike). The crop's sample ``i`` is compared with the nearest
    whole-image sample ``j0 + i``.
    """
    return _placement(start, length, image_length, ratio)[0]


def _placement(start: int, length: int, image_length: int, ratio: float) -> tuple[float, int, int]:
    """(:func:`grid_offset`, the whole image's resampled index ``j0`` of the crop's first resampled
    sample, the crop's resampled length)."""
    full_out = max(round(image_length * ratio), 1)
    out = max(round(length * ratio), 1)
    full_scale, scale = image_length / full_out, length / out
    first = start + 0.5 * scale - 0.5  # the crop's first sample in image coordinates
    j0 = round((first + 0.5) / full_scale - 0.5)
    offset = first - ((j0 + 0.5) * full_scale - 0.5)
    return max(abs(offset), abs(offset + (out - 1) * (scale - full_scale))), j0, out


def _aligned_range(start: int, stop: int, image_length: int, ratio: float, search: int,
                   holds=lambda j0, out: True) -> tuple[slice, int, int] | None:
    """The smallest ``[start, stop)`` grown by up to ``search`` voxels per side (within the image) whose
    resampled grid falls on the whole image's (offsets within ``ALIGNED_WITHIN`` voxel count as equal),
    among those whose placement ``holds(j0, out)``: (the range, j0, resampled length), or None."""
    best = None
    for a in range(start, max(start - search, 0) - 1, -1):
        for b in range(stop, min(stop + search, image_length) + 1):
            offset, j0, out = _placement(a, b - a, image_length, ratio)
            if not holds(j0, out):
                continue
            key = (round(offset / ALIGNED_WITHIN), b - a)
            if best is None or key < best[0]:
                best = (key, slice(a, b), j0, out)
    return None if best is None else best[1:]


def aligned_crop(crop: Region, shape: Sequence[int], spacing_zyx: Sequence[float],
                 target_spacing_zyx: Sequence[float], search: int = 32) -> Region:
    """``crop`` grown by up to ``search`` voxels per side so that, resampled on its own to the network's
    spacing, its samples fall where the whole image's resampled samples fall (:func:`grid_offset`).

    A crop's resampled grid is otherwise shifted by up to half a target voxel against the whole
    image's, which moves a sharp 0.5 boundary of the prediction by a fraction of a voxel wherever the
    two are compared. Axes the network does not resample (equal spacing) are kept as they are. The
    whole image is taken as nnU-Net resamples it, i.e. without all-zero borders that its
    ``crop_to_nonzero`` would remove first (CT holds no such border).
    """
    out = []
    for sl, n, s, t in zip(crop, shape, spacing_zyx, target_spacing_zyx):
        ratio = float(s) / float(t)
        if abs(ratio - 1.0) < 1e-9:
            out.append(sl)
            continue
        out.append(_aligned_range(sl.start, sl.stop, n, ratio, search)[0])
    return tuple(out)


@dataclass(frozen=True)
class TilePlan:
    """What the network runs for one region so that its prediction there equals the whole volume's.

    Attributes:
        crop: the part of the image to preprocess (input grid).
        first: per axis, the whole volume's resampled index of the crop's first resampled sample.
        shape: the crop's shape once resampled (what nnU-Net's preprocessing gives).
        starts: per axis, the starts of the whole volume's sliding-window tiles that reach the region,
            in the crop's resampled grid; the tiles are all their combinations.
    """

    crop: Region
    first: tuple[int, ...]
    shape: tuple[int, ...]
    starts: tuple[tuple[int, ...], ...]

    def slicers(self, patch: Sequence[int]) -> list[tuple[slice, ...]]:
        """The tiles as nnU-Net's predictor slices them (channel axis first)."""
        import itertools

        return [(slice(None), *(slice(s, s + p) for s, p in zip(combo, patch)))
                for combo in itertools.product(*self.starts)]


def tile_plan(region: Region, shape: Sequence[int], spacing_zyx: Sequence[float],
              target_spacing_zyx: Sequence[float], patch: Sequence[int], step: float,
              search: int = 32) -> TilePlan | None:
    """The crop and tiles that reproduce the whole-volume prediction inside ``region``, or None.

    nnU-Net resamples the whole volume, tiles it (``compute_steps_for_sliding_window``), averages the
    overlapping tiles with Gaussian weights and resamples back. A voxel's prediction therefore depends
    on the tiles that reach it and on where the resampled samples lie. This takes, per axis, the
    whole volume's tiles that reach the resampled samples the region's voxels are interpolated from
    (plus 2), and the smallest crop (grown by up to ``search`` voxels) whose own resampled grid falls on
    the whole volume's (:func:`grid_offset` within ``ALIGNED_WITHIN`` voxel where possible) and holds those
    tiles.
    Predicting the crop with exactly these tiles gives the whole volume's values in the region, up to
    the resampling near the crop's edges. Axes: (z, y, x) of the input, which the network must not
    transpose; None when the volume is smaller than a patch along an axis (nnU-Net pads it then).
    """
    from nnunetv2.inference.sliding_window_prediction import compute_steps_for_sliding_window

    full_shape = [max(round(n * s / t), 1) for n, s, t in zip(shape, spacing_zyx, target_spacing_zyx)]
    if any(m < p for m, p in zip(full_shape, patch)):
        return None
    full_steps = compute_steps_for_sliding_window(full_shape, patch, step)
    crop, first, crop_shape, starts = [], [], [], []
    for sl, n, s, t, full, p, axis_steps in zip(region, shape, spacing_zyx, target_spacing_zyx, full_shape, patch,
                                                full_steps):
        ratio, scale = float(s) / float(t), n / full
        # the resampled samples the region's voxels are interpolated from, and 2 more on each side
        low = max(int(np.floor((sl.start + 0.5) / scale - 0.5)) - 2, 0)
        high = min(int(np.ceil((sl.stop - 0.5) / scale - 0.5)) + 2, full - 1)
        chosen = [a for a in axis_steps if a <= high and a + p - 1 >= low]
        lo, hi = min(chosen), max(chosen) + p
        a0, b0 = max(int(np.floor(lo * scale)) - 1, 0), min(int(np.ceil(hi * scale)) + 1, n)
        found = _aligned_range(a0, b0, n, ratio, search, lambda j0, out, lo=lo, hi=hi: j0 <= lo and j0 + out >= hi)
        if found is None:
            return None
        piece, j0, out = found
        crop.append(piece)
        first.append(j0)
        crop_shape.append(out)
        starts.append(tuple(a - j0 for a in chosen))
    return TilePlan(tuple(crop), tuple(first), tuple(crop_shape), tuple(starts))
