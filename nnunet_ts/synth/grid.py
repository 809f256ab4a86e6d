"""The voxel grid in the patient frame (mm), and the tube primitive drawn on it.

The patient frame has x towards the patient's left, y posterior, z superior (LPS), in mm, with
x = y = 0 on the body axis and z = 0 at mid-height of the lungs. Arrays are (z, y, x); index
``k`` along an axis sits at ``corner + k * spacing``. Shapes are drawn only inside the bounding box
of their voxels, so cost follows the size of the shape, not of the image.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np

Box = tuple[slice, slice, slice]


@dataclass(frozen=True)
class Grid:
    """Voxel grid: ``shape`` (z, y, x) voxels, ``spacing`` and ``corner`` (z, y, x) in mm."""

    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]
    corner: tuple[float, float, float]

    @cached_property
    def axes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Positions (mm, float32) of the voxel centres along z, y and x."""
        return tuple((self.corner[d] + np.arange(self.shape[d]) * self.spacing[d]).astype(np.float32)
                     for d in range(3))

    def axis(self, dim: int, sl: slice = slice(None)) -> np.ndarray:
        """Positions (mm, float32) of the voxel centres along ``dim`` (0 = z, 1 = y, 2 = x)."""
        return self.axes[dim][sl]

    def coords(self, box: Box | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Broadcastable positions (z (n,1,1), y (1,n,1), x (1,1,n)) in mm, of ``box`` or the grid."""
        box = box or (slice(None),) * 3
        z, y, x = (self.axis(d, box[d]) for d in range(3))
        return z[:, None, None], y[None, :, None], x[None, None, :]

    def index_of(self, point_zyx: Sequence[float]) -> np.ndarray:
        """Continuous voxel index (z, y, x) of a patient-frame point."""
        return (np.asarray(point_zyx, float) - self.corner) / np.asarray(self.spacing)

    def position_of(self, index_zyx: Sequence[float]) -> np.ndarray:
        """Patient-frame point (z, y, x) mm of a voxel index."""
        return np.asarray(self.corner) + np.asarray(index_zyx, float) * np.asarray(self.spacing)

    def box_around(self, lo_mm: Sequence[float], hi_mm: Sequence[float]) -> Box | None:
        """Voxel box covering [lo, hi] (mm, z y x), clipped to the grid; None when it misses."""
        lo = np.ceil(self.index_of(lo_mm) - 1e-6).astype(int)
        hi = np.floor(self.index_of(hi_mm) + 1e-6).astype(int) + 1
        lo, hi = np.maximum(lo, 0), np.minimum(hi, self.shape)
        if np.any(hi <= lo):
            return None
        return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))

    def voxel_at(self, point_zyx: Sequence[float]) -> tuple[int, int, int] | None:
        """Nearest voxel of a point, None outside the grid."""
        index = np.rint(self.index_of(point_zyx)).astype(int)
        if np.any(index < 0) or np.any(index >= self.shape):
            return None
        return tuple(int(i) for i in index)


def tube_occupancy(grid: Grid, start: Sequence[float], end: Sequence[float], r_start: float,
                   r_end: float) -> tuple[Box, np.ndarray] | None:
    """Partial-volume occupancy (0-1, float32) of a tapered tube (capsule) from start to end (mm).

    The radius goes linearly from ``r_start`` to ``r_end``. The edge is a ramp one in-plane voxel
    wide; a tube thinner than a voxel is spread over one voxel with its contrast scaled down by
    diameter / voxel, roughly what partial volume does to small vessels.

    Returns:
        (box, occupancy of shape box) or None when the tube misses the grid.
    """
    # Scalar maths in plain Python: this runs for ~1000 small tubes per case.
    width = float(grid.spacing[2])
    reach = max(r_start, r_end, 0.5 * width) + width
    box = []
    for k in range(3):
        lo = (min(start[k], end[k]) - reach - grid.corner[k]) / grid.spacing[k]
        hi = (max(start[k], end[k]) + reach - grid.corner[k]) / grid.spacing[k]
        i0, i1 = max(math.ceil(lo), 0), min(math.floor(hi) + 1, grid.shape[k])
        if i1 <= i0:
            return None
        box.append(slice(i0, i1))
    axes = grid.axes
    az, ay, ax = (float(c) for c in start)
    dz, dy, dx = float(end[0]) - az, float(end[1]) - ay, float(end[2]) - ax
    inv_len2 = 1.0 / max(dz * dz + dy * dy + dx * dx, 1e-6)
    pz = (axes[0][box[0]] - az)[:, None, None]
    py = (axes[1][box[1]] - ay)[None, :, None]
    px = (axes[2][box[2]] - ax)[None, None, :]
    # |p - t d|^2 = |p|^2 - 2 t (p.d) + t^2 |d|^2 with t the clipped projection on the axis.
    p_dot_d = (pz * dz + py * dy) + px * dx
    t = p_dot_d * inv_len2
    _clip01(t)
    dist2 = (pz * pz + py * py) + px * px
    dist2 -= t * (2.0 * p_dot_d - t * (1.0 / inv_len2))
    dist = np.sqrt(np.maximum(dist2, 0.0, out=dist2), out=dist2)
    if min(r_start, r_end) >= 0.5 * width:
        occ = (r_start + (r_end - r_start) * t - dist) * (1.0 / width) + 0.5
        return tuple(box), _clip01(occ)
    radius = r_start + (r_end - r_start) * t
    # Below one voxel: keep the profile one voxel wide and scale the contrast by the diameter.
    contrast = np.minimum(radius * (2.0 / width), 1.0)
    occ = (np.maximum(radius, 0.5 * width) - dist) * (1.0 / width) + 0.5
    _clip01(occ)
    occ *= contrast
    return tuple(box), occ


def _clip01(a: np.ndarray) -> np.ndarray:
    """In-place clip to [0, 1] with two ufunc calls (np.clip's wrapper costs more on tiny arrays)."""
    np.maximum(a, 0.0, out=a)
    return np.minimum(a, 1.0, out=a)


def draw_tube(target: np.ndarray, grid: Grid, start: Sequence[float], end: Sequence[float],
              r_start: float, r_end: float | None = None) -> None:
    """Max-accumulate a tube's occupancy into ``target`` (float32, grid shape) in place."""
    drawn = tube_occupancy(grid, start, end, r_start, r_start if r_end is None else r_end)
    if drawn is not None:
        box, occ = drawn
        np.maximum(target[box], occ, out=target[box])


def superellipse_radius(u: np.ndarray, v: np.ndarray, a: float, b: float, p: float = 2.0) -> np.ndarray:
    """Normalised radius (|u/a|^p + |v/b|^p)^(1/p): < 1 inside the superellipse with semi-axes a, b."""
    if p == 2.0:
        return np.sqrt((u / a) ** 2 + (v / b) ** 2)
    return (np.abs(u / a) ** p + np.abs(v / b) ** p) ** (1.0 / p)
