"""Exact diameters of voxel shapes, each voxel taken as the box it covers (not its centre point).

A lesion's outline is the union of its voxels' boxes, so a 10 x 20 voxel rectangle at 1 mm spacing
measures 10 x 20 mm, not 9 x 19 mm between voxel centres. Coordinates are in mm in the image's own
axes (index times spacing); with an orthonormal direction matrix (every CT) distances equal patient
distances.
"""
from __future__ import annotations

import numpy as np

_CHUNK = 256


def farthest_pair(points: np.ndarray) -> tuple[float, int, int]:
    """(distance, i, j) of the two points farthest apart; ``points`` (n, d), n >= 1."""
    best, bi, bj = -1.0, 0, 0
    for start in range(0, len(points), _CHUNK):
        block = points[start:start + _CHUNK]
        d2 = ((block[:, None, :] - points[None, :, :]) ** 2).sum(-1)
        k = int(np.argmax(d2))
        i, j = divmod(k, len(points))
        if d2[i, j] > best:
            best, bi, bj = float(d2[i, j]), start + i, j
    return float(np.sqrt(best)), bi, bj


def _box_corners(centres: np.ndarray, half: np.ndarray) -> np.ndarray:
    """The 2**d corners of the boxes centred at ``centres`` (n, d) with half-sizes ``half`` (d,)."""
    d = centres.shape[1]
    signs = np.array(np.meshgrid(*[[-1.0, 1.0]] * d, indexing="ij")).reshape(d, -1).T  # (2**d, d)
    return (centres[:, None, :] + signs[None] * half).reshape(-1, d)


def longest_diameter(centres_mm: np.ndarray, spacing: np.ndarray) -> float:
    """Largest distance (mm) between two points of the union of voxel boxes.

    The farthest points of a union of equal boxes are corners of the boxes whose centres are
    vertices of the centres' convex hull (the support function of the union is the centres' plus
    the box's), so only those voxels' corners are compared.

    Args:
        centres_mm: (n, d) voxel centres in mm, d = 2 or 3; the shape's surface voxels suffice.
        spacing: (d,) voxel size in mm in the same axis order.
    """
    from scipy.spatial import ConvexHull, QhullError

    centres = np.asarray(centres_mm, float)
    if len(centres) > centres.shape[1] + 1:
        try:
            centres = centres[ConvexHull(centres).vertices]
        except QhullError:  # all centres in a line or plane: the corners below are few enough
            pass
    corners = _box_corners(centres, np.asarray(spacing, float) / 2)
    if len(corners) > 64:
        corners = corners[ConvexHull(corners).vertices]
    return farthest_pair(corners)[0]


def axial_diameters(slice_mask: np.ndarray, spacing_xy: tuple[float, float]) -> tuple[float, float]:
    """(longest, perpendicular) diameters in mm of a 2D mask (y, x), RECIST/WHO style.

    longest: the largest distance between two points of the shape (maximum Feret diameter).
    perpendicular: the longest straight segment inside the shape that is perpendicular to the
    longest diameter (the bidimensional short axis; for a 10 x 20 mm rectangle, whose longest
    diameter is its 22.36 mm diagonal, 11.18 mm). Both are exact for the pixel-box outline: the
    length of the chords perpendicular to the long axis is piecewise linear in their position, so
    it is evaluated just beside every outline corner.

    Args:
        slice_mask: bool (y, x), at least one pixel set.
        spacing_xy: pixel size (x, y) in mm.
    """
    from scipy.spatial import ConvexHull

    sx, sy = spacing_xy
    m = np.pad(np.asarray(slice_mask, bool), 1)
    # outline edges between a set and an unset pixel; pixel (y, x) covers [x-.5, x+.5] x [y-.5, y+.5]
    jy, xh = np.nonzero(m[1:, 1:-1] != m[:-1, 1:-1])   # horizontal edge at y = jy - .5
    yv, ix = np.nonzero(m[1:-1, 1:] != m[1:-1, :-1])   # vertical edge at x = ix - .5
    a = np.concatenate([np.stack([xh - 0.5, jy - 0.5], 1), np.stack([ix - 0.5, yv - 0.5], 1)])
    b = np.concatenate([np.stack([xh + 0.5, jy - 0.5], 1), np.stack([ix - 0.5, yv + 0.5], 1)])
    scale = np.array([sx, sy])
    a, b = a * scale, b * scale
    corners = np.unique(np.concatenate([a, b]), axis=0)
    hull = corners[ConvexHull(corners).vertices]
    longest, i, j = farthest_pair(hull)
    u = (hull[j] - hull[i]) / longest
    v = np.array([-u[1], u[0]])
    ta, tb, va, vb = a @ u, b @ u, a @ v, b @ v
    lo, hi = np.minimum(ta, tb), np.maximum(ta, tb)
    eps = 1e-7 * max(longest, 1.0)
    breaks = np.unique(corners @ u)
    candidates = np.concatenate([breaks - eps, breaks + eps])
    candidates = candidates[(candidates > breaks[0]) & (candidates < breaks[-1])]
    crossing = ta != tb
    ta, tb, va, vb, lo, hi = (x[crossing] for x in (ta, tb, va, vb, lo, hi))
    perpendicular = 0.0
    for start in range(0, len(candidates), _CHUNK):
        t = candidates[start:start + _CHUNK, None]
        hit = (lo < t) & (t < hi)
        with np.errstate(invalid="ignore", divide="ignore"):
            where = np.where(hit, va + (t - ta) / (tb - ta) * (vb - va), np.nan)
        where = np.sort(where, axis=1)  # NaN last; a line off every corner crosses the outline an even number of times
        inside = where[:, 1::2] - where[:, 0::2][:, :where[:, 1::2].shape[1]]
        if inside.size and np.isfinite(inside).any():
            perpendicular = max(perpendicular, float(np.nanmax(inside)))
    return float(longest), perpendicular
