"""Box perturbation: the imprecise boxes of a human reader, simulated on a segbox (Sun et al.).

Sun et al. test how robust a box-guided teacher is by drawing every box a little wrong: each box is
scaled by a factor in [0.9, 1.2] and each of its corners moved by less than 1/10 of the box side
(lesions; organs got [0.95, 1.1] and 1/20). We use the same perturbation as a training augmentation
for the teacher, so it learns to segment from the boxes readers really draw, and at evaluation to
report DSC with perturbed boxes.

A segbox (z, y, x) is a stack of per-slice rectangles. Its rectangles are recovered per 3D blob
(``segbox.slice_rectangles`` in ``per_lesion`` form). Per lesion (3D blob) one scale factor is drawn,
as a reader's systematic tendency to draw large or tight; per rectangle each edge moves
independently, as a reader's hand does from slice to slice. Axial positions (which slices hold a box)
are kept: readers draw on the slices where they see tumour.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nnunet_ts.boxes.segbox import SliceRectangle, rectangles_to_segbox, slice_rectangles


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


def perturb_segbox(segbox: np.ndarray, config: BoxPerturbation,
                   rng: np.random.Generator) -> np.ndarray:
    """A perturbed copy of a binary segbox (z, y, x); uint8 {0, 1}, same shape.

    The probability in ``config`` is not applied here (callers decide per sample); every rectangle
    of every lesion is perturbed.
    """
    segbox = np.asarray(segbox) > 0.5
    if not segbox.any():
        return segbox.astype(np.uint8)
    rects = slice_rectangles(segbox, mode="per_lesion")
    return rectangles_to_segbox(perturb_rectangles(rects, segbox.shape, config, rng), segbox.shape)
