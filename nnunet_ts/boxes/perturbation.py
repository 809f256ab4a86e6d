"""Box perturbation: the imprecise boxes of a human reader, simulated on a segbox (Sun et al.).

Sun et al. test how robust a box-guided teacher is by drawing every box a little wrong: each box is
scaled by a factor in [0.9, 1.2] and each of its corners moved by less than 1/10 of the box side
(lesions; organs got [0.95, 1.1] and 1/20). We use the same perturbation as a training augmentation
for the teacher, so it learns to segment from the boxes readers really draw, and at evaluation to
report DSC with perturbed boxes.

A segbox (z, y, x) is a stack of per-slice rectangles. Its rectangles are recovered per 3D blob
(``segbox.slice_rectangles`` in ``per_lesion`` form); where one blob holds several lesions (the boxes of
neighbouring lesions overlap), the lesion labels split it into each lesion's own rectangles, so their
boxes do not merge into a common one. Per lesion one scale factor is drawn, as a reader's systematic
tendency to draw large or tight; per rectangle each edge moves independently, as a reader's hand does
from slice to slice. Axial positions (which slices hold a box) are kept: readers draw on the slices
where they see tumour. On data whose axes nnU-Net's plans transposed, ``axial_axis`` says which axis
is the axial one.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nnunet_ts.boxes.segbox import SliceRectangle, label_lesions, rectangles_to_segbox, slice_rectangles


@dataclass(frozen=True)
class BoxPerturbation:
    """How boxes are perturbed.

    Attributes:
        probability: chance that a training sample gets perturbed boxes (all its lesions), in [0, 1].
        scale: range of the per-lesion scale factor applied to each rectangle's side lengths about
            its centre.
        corner_shift: largest move of each rectangle edge as a fraction of the side it lies across
            (Sun et al.: < 1/10 for lesions).
    """

    probability: float = 0.5
    scale: tuple[float, float] = (0.9, 1.2)
    corner_shift: float = 0.1

    def __post_init__(self) -> None:
        if not 0.0 <= self.probability <= 1.0:
            raise ValueError(f"probability must be in [0, 1], got {self.probability}")
        if not 0.0 < self.scale[0] <= self.scale[1]:
            raise ValueError(f"scale must be (low, high) with 0 < low <= high, got {self.scale}")
        if not 0.0 <= self.corner_shift < 0.5:
            raise ValueError(f"corner_shift must be in [0, 0.5), got {self.corner_shift}")


def _perturb_interval(lo: int, hi: int, factor: float, shift: float, size: int,
                      rng: np.random.Generator) -> tuple[int, int]:
    """A [lo, hi] voxel interval scaled about its centre, both ends moved, clipped to [0, size)."""
    side = hi - lo + 1
    centre = (lo + hi) / 2.0
    half = side * factor / 2.0
    new_lo = centre - half + 0.5 + rng.uniform(-shift, shift) * side
    new_hi = centre + half - 0.5 + rng.uniform(-shift, shift) * side
    a, b = int(round(min(new_lo, new_hi))), int(round(max(new_lo, new_hi)))
    a, b = min(max(a, 0), size - 1), min(max(b, 0), size - 1)
    return a, b


def perturb_rectangles(rects: list[SliceRectangle], shape: tuple[int, int, int],
                       config: BoxPerturbation, rng: np.random.Generator) -> list[SliceRectangle]:
    """Each rectangle scaled by its lesion's factor and its edges moved; stays inside ``shape``."""
    factors: dict[int, float] = {}
    out = []
    for r in rects:
        factor = factors.setdefault(r.lesion, float(rng.uniform(*config.scale)))
        y0, y1 = _perturb_interval(r.y_min, r.y_max, factor, config.corner_shift, shape[1], rng)
        x0, x1 = _perturb_interval(r.x_min, r.x_max, factor, config.corner_shift, shape[2], rng)
        out.append(SliceRectangle(r.z, y0, y1, x0, x1, r.lesion))
    return out


def lesion_rectangles(segbox: np.ndarray, lesions: np.ndarray | None = None) -> list[SliceRectangle]:
    """The per-slice rectangles of a binary segbox (z, y, x), grouped by lesion.

    Without ``lesions`` a lesion is a 3D blob of the segbox. With ``lesions`` (labelled mask, 0 =
    background, same shape), a blob that holds several lesions is split: each lesion gets the
    rectangles of its own voxels per slice, and a slice of the blob that holds none of them goes to
    the lesion nearest along z (the box keeps its slices).
    """
    segbox = np.asarray(segbox) > 0.5
    rects = slice_rectangles(segbox, mode="per_lesion")
    if lesions is None or not rects:
        return rects
    blobs, n_blobs = label_lesions(segbox)  # the labelling slice_rectangles used: same ids
    lesions = np.asarray(lesions)
    out: list[SliceRectangle] = []
    next_id = n_blobs + 1
    for blob in range(1, n_blobs + 1):
        blob_rects = [r for r in rects if r.lesion == blob]
        inside = np.unique(lesions[(blobs == blob) & (lesions > 0)])
        if len(inside) < 2:
            out += blob_rects
            continue
        own: dict[int, list[SliceRectangle]] = {}
        for k in inside:
            own[next_id] = [SliceRectangle(r.z, r.y_min, r.y_max, r.x_min, r.x_max, next_id)
                            for r in slice_rectangles((lesions == k) & (blobs == blob), mode="per_slice")]
            next_id += 1
        covered = {r.z for rs in own.values() for r in rs}
        for r in blob_rects:
            if r.z not in covered:
                nearest = min(own, key=lambda i: min(abs(q.z - r.z) for q in own[i]))
                own[nearest].append(SliceRectangle(r.z, r.y_min, r.y_max, r.x_min, r.x_max, nearest))
        out += [r for rs in own.values() for r in rs]
    out.sort(key=lambda r: (r.z, r.lesion, r.y_min, r.x_min))
    return out


def perturb_segbox(segbox: np.ndarray, config: BoxPerturbation, rng: np.random.Generator,
                   lesions: np.ndarray | None = None, axial_axis: int = 0) -> np.ndarray:
    """A perturbed copy of a binary segbox; uint8 {0, 1}, same shape.

    The probability in ``config`` is not applied here (callers decide per sample); every rectangle
    of every lesion is perturbed.

    Args:
        segbox: binary, 3D; its axial slices along ``axial_axis`` (0 for (z, y, x)).
        lesions: labelled tumour mask of the same shape (0 = background), to keep the boxes of
            neighbouring lesions apart (:func:`lesion_rectangles`); None: lesions are box blobs.
        axial_axis: the axis whose slices hold the rectangles (nnU-Net's plans may have moved it:
            ``transpose_forward.index(0)``).
    """
    segbox = np.moveaxis(np.asarray(segbox) > 0.5, axial_axis, 0)
    if not segbox.any():
        return np.moveaxis(segbox.astype(np.uint8), 0, axial_axis)
    if lesions is not None:
        lesions = np.moveaxis(np.asarray(lesions), axial_axis, 0)
    rects = lesion_rectangles(segbox, lesions)
    perturbed = rectangles_to_segbox(perturb_rectangles(rects, segbox.shape, config, rng), segbox.shape)
    return np.moveaxis(perturbed, 0, axial_axis)
