"""The classical lung mask: lung labels of a CT from HU alone, for when lungmask's weights are missing.

The classical mask is built for clinical series, not whole-body phantoms: tight fields of view
(lungs touching any image border, body cut by the FOV), partial chests (apex or bases only), one
lung, tumours against the chest wall or the mediastinum. Its steps, in the spirit of Hu et al.
2001 (IEEE TMI 20:490):

1. **Body**: soft tissue and bone (HU >= threshold) opened in-plane, the largest 3D component, and
   its convex hull in each axial slice. Where the lungs touch the image border the hull's edge is
   the border, so they stay inside the body; air outside the body lies outside the hull. Padding
   outside a reconstruction circle (HU below -1024, or one value <= -1000 in every slice) is neither
   air nor body; where the circle cuts the body, the hull reaches out to the circle.
2. **Air inside the body**: air below the threshold, minus every axial air component (2D) with a
   pixel outside the hull (the air around the body, between the arms and the chest, under the back).
3. **Airways**: the trachea and main bronchi are grown from the top slices through pure air
   (smoothed HU < -950, lowered while the grown volume leaks into the lungs) and removed.
4. **Lungs among the air pockets** (3D components): those of at least a few ml, except gas under
   the lungs (stomach, bowel: most of its voxels have another air pocket above them in their column).
5. **One lung or two**: a valley in the left-right profile of the lung voxels (the mediastinum) splits
   two lungs; no valley is one lung, whose side is its position against the body's midline (or the
   scanner's isocentre, patient x = 0, when the FOV cuts the body at the side).
6. **Filling** each lung: a 3D closing sized in mm, then holes filled in axial, coronal and sagittal
   planes (vessels, tumours inside the lung, tumours against the chest wall or the mediastinum).

Arrays are (z, y, x) as SimpleITK returns them; ``spacing`` and ``direction`` are SimpleITK's (x, y, z
order, row-major 3 x 3). Sides are decided in patient coordinates (LPS: larger x = patient's left).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

RIGHT, LEFT = 1, 2                     # lungmask R231's labels: 1 = right lung, 2 = left lung
IDENTITY = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)


@dataclass(frozen=True)
class ClassicalSettings:
    """Settings of :func:`classical_lung_mask`; the defaults suit adult chest CT."""

    # Air and lung below, fat, soft tissue and bone above (HU).
    threshold_hu: float = -320.0
    # Below this is no air but padding: pixels outside the reconstruction circle (-2000, -3024, ...);
    # padding stored as air (-1024) is found as pixels of one value in every slice.
    not_imaged_hu: float = -1024.0
    # In-plane opening radius (mm) that detaches the table, sheets and cables from the body.
    body_opening_mm: float = 4.0
    # Airway lumen (pure air) lies below this smoothed HU; lowered in 10 HU steps down to
    # airway_floor_hu while the grown airway exceeds airway_max_ml (it leaked into the lungs).
    airway_hu: float = -950.0
    airway_floor_hu: float = -995.0
    airway_max_ml: float = 250.0
    # Slices (mm from the top of the air inside the body) where the trachea is looked for.
    airway_seed_depth_mm: float = 20.0
    # Air pockets smaller than this (ml), or than this fraction of the largest, are not lung.
    min_lung_ml: float = 2.0
    min_lung_fraction: float = 0.02
    # An air pocket is gas under the lungs when this fraction of its voxels has another pocket above.
    below_fraction: float = 0.5
    # Two lungs: the left-right profile dips under this fraction of its lower peak, and each side
    # holds at least min_side_fraction of the lung voxels over at least min_side_width_mm.
    valley_fraction: float = 0.2
    # Along directions more than 30 degrees from patient x (a patient lying on the side) the valley
    # must be nearly empty: the lobes of one lung lie front to back and must not pass for two lungs.
    far_valley_fraction: float = 0.05
    min_side_fraction: float = 0.03
    min_side_width_mm: float = 30.0
    # Radius (mm) of the 3D closing of each lung (tumours and vessels at its border).
    closing_mm: float = 20.0

    def __post_init__(self) -> None:
        if not self.airway_floor_hu <= self.airway_hu:
            raise ValueError(f"airway_floor_hu {self.airway_floor_hu} must be <= airway_hu {self.airway_hu}")
        for name in ("body_opening_mm", "airway_max_ml", "min_lung_ml", "closing_mm", "min_side_width_mm"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")


@dataclass(frozen=True)
class _Frame:
    """Patient coordinates (LPS, mm) of the voxels of a (z, y, x) grid: linear in the indices."""

    shape: tuple[int, int, int]
    spacing_zyx: tuple[float, float, float]
    direction: np.ndarray     # 3 x 3, columns = patient directions of the x, y, z index axes
    origin: tuple[float, float, float]   # patient position (x, y, z) of voxel (0, 0, 0), mm

    def patient(self, row: int, zz, yy, xx) -> np.ndarray:
        """Patient coordinate ``row`` (0 = x, 1 = y, 2 = z; mm, LPS) of voxels (z, y, x)."""
        d, (sz, sy, sx) = self.direction, self.spacing_zyx
        return self.origin[row] + d[row, 0] * sx * np.asarray(xx, float) + \
            d[row, 1] * sy * np.asarray(yy, float) + d[row, 2] * sz * np.asarray(zz, float)

    @property
    def up(self) -> int:
        """+1 when the z index runs towards the head (patient z grows), else -1."""
        return 1 if self.direction[2, 2] >= 0 else -1

    @property
    def voxel_ml(self) -> float:
        return float(np.prod(self.spacing_zyx)) / 1000.0


def classical_lung_mask(hu: np.ndarray, direction: Sequence[float] = IDENTITY,
                        spacing: Sequence[float] = (1.0, 1.0, 1.0), origin: Sequence[float] = (0.0, 0.0, 0.0),
                        settings: ClassicalSettings | None = None) -> np.ndarray:
    """Lung labels (uint8 (z, y, x): 1 right, 2 left) of a CT from HU alone (steps: module docstring).

    Args:
        hu: CT (z, y, x) in HU, axial slices (any in-plane orientation).
        direction: SimpleITK direction (row-major 3 x 3; LPS patient axes).
        spacing: SimpleITK spacing (x, y, z), mm.
        origin: SimpleITK origin (x, y, z), mm: only used for a single lung in a FOV that cuts the body
            at the side, whose side is then its position against the scanner's isocentre (x = 0).
        settings: thresholds and sizes; :class:`ClassicalSettings` by default.
    """
    settings = settings or ClassicalSettings()
    hu = np.asarray(hu)
    frame = _Frame(hu.shape, tuple(float(s) for s in spacing[::-1]),
                   np.asarray(direction, float).reshape(3, 3), tuple(float(o) for o in origin))
    out = np.zeros(hu.shape, np.uint8)
    not_imaged = hu < settings.not_imaged_hu
    if hu.shape[0] >= 3:  # padding stored as air (-1024): the same value in every slice, unlike noisy air
        flat = (hu.min(axis=0) == hu.max(axis=0)) & (hu[0] <= -1000)
        not_imaged |= flat[None]
    air = (hu < settings.threshold_hu) & ~not_imaged
    hull = _body_hull(~air & ~not_imaged, not_imaged, frame, settings.body_opening_mm)
    candidates = air & hull
    candidates &= ~_outside_air(air, hull)
    airway = _airway(hu, candidates, frame, settings)
    if airway is not None:
        from scipy import ndimage

        candidates &= ~ndimage.binary_dilation(airway)
    lungs = _select_lungs(candidates, frame, settings)
    if not lungs.any():
        return out
    split = _split(lungs, hull, frame, settings)
    zz, yy, xx = np.nonzero(lungs)
    left = split.left(frame, zz, yy, xx)
    filled = {}
    for value, side in ((RIGHT, ~left), (LEFT, left)):
        part = np.zeros(hu.shape, bool)
        part[zz[side], yy[side], xx[side]] = True
        filled[value] = _fill(part, frame, settings.closing_mm)
    out[filled[RIGHT]] = RIGHT
    out[filled[LEFT]] = LEFT
    both = filled[RIGHT] & filled[LEFT]
    if both.any():  # the closings met in the mediastinum: the split plane decides
        bz, by, bx = np.nonzero(both)
        out[bz, by, bx] = np.where(split.left(frame, bz, by, bx), LEFT, RIGHT)
    return out


def _body_hull(tissue: np.ndarray, not_imaged: np.ndarray, frame: _Frame, opening_mm: float) -> np.ndarray:
    """Convex hull, per axial slice, of the body (the largest 3D component of opened tissue).

    Where the body runs into padding (a reconstruction circle cutting it), a hull edge between two
    body points on the circle (or the image border) is a chord and the lung may touch the arc beyond
    it: the circular segment between the two is added. Computed on a grid of about 2 mm in-plane (the hull only
    separates outside air from the lungs, which lie centimetres inside it), then repeated back onto
    the full grid.
    """
    import cc3d
    from scipy import ndimage
    from skimage.morphology import convex_hull_image

    _, ny, nx = tissue.shape
    step = max(1, int(2.0 // max(frame.spacing_zyx[1], frame.spacing_zyx[2])))
    small = tissue[:, ::step, ::step]
    ry, rx = (opening_mm / (s * step) for s in frame.spacing_zyx[1:])
    if min(ry, rx) >= 1.0:
        gy, gx = np.ogrid[-int(ry):int(ry) + 1, -int(rx):int(rx) + 1]
        disk = (gy / ry) ** 2 + (gx / rx) ** 2 <= 1.0
        small = ndimage.binary_opening(small, structure=disk[None])
    labels = cc3d.connected_components(small, connectivity=6)
    counts = np.bincount(labels.ravel())
    counts[0] = 0
    hull = np.zeros(small.shape, bool)
    if counts.max() == 0:
        return np.zeros(tissue.shape, bool)
    body = labels == counts.argmax()
    padding = not_imaged[:, ::step, ::step]
    # The edge of the imaged area: the padding, and the image border where the circle reaches it.
    edge = padding.copy()
    edge[:, [0, -1], :] = edge[:, :, [0, -1]] = True
    pixel = step * max(frame.spacing_zyx[1:])
    # A hull vertex within 8 mm of that edge is on it (a vessel of a lung cut by the circle can be the
    # vertex); a chord spans at least 15 mm (shorter hull edges follow the body's own outline).
    near_edge = ndimage.binary_dilation(edge, structure=_in_plane(0, 2), iterations=max(2, int(np.ceil(8.0 / pixel))))
    for z in np.flatnonzero(body.any(axis=(1, 2))):
        hull[z] = convex_hull_image(body[z])
        if padding[z].any() and (body[z] & near_edge[z]).any():
            hull[z] |= _segments_to_padding(body[z], near_edge[z], padding[z], 15.0 / pixel)
    return np.repeat(np.repeat(hull, step, axis=1), step, axis=2)[:, :ny, :nx]


def _segments_to_padding(body: np.ndarray, near_edge: np.ndarray, padding: np.ndarray,
                         min_chord: float) -> np.ndarray:
    """Pixels (2D bool) beyond each hull edge of ``body`` at least ``min_chord`` pixels long whose two
    ends touch the edge of the imaged area, up to the padding."""
    from scipy.spatial import ConvexHull, QhullError

    points = np.argwhere(body).astype(float)
    try:
        vertices = points[ConvexHull(points).vertices]
    except (QhullError, ValueError):    # fewer than 3 points, or all on a line
        return np.zeros(body.shape, bool)
    centre = vertices.mean(axis=0)
    grid = np.indices(body.shape).reshape(2, -1).T.astype(float)
    out = np.zeros(body.size, bool)
    for p, q in zip(vertices, np.roll(vertices, -1, axis=0)):
        d = q - p
        if np.hypot(*d) < min_chord or not (near_edge[tuple(p.astype(int))] and near_edge[tuple(q.astype(int))]):
            continue
        normal = np.array([-d[1], d[0]])
        if np.dot(centre - p, normal) > 0:
            normal = -normal                   # pointing away from the body
        t = (grid - p) @ d / max(float(d @ d), 1e-9)
        out |= ((grid - p) @ normal > 0) & (t >= 0) & (t <= 1)
    return out.reshape(body.shape) & ~padding


def _in_plane(axis: int, connectivity: int = 1) -> np.ndarray:
    """A 3 x 3 x 3 structure connecting voxels only within planes normal to ``axis``."""
    from scipy import ndimage

    structure = np.zeros((3, 3, 3), bool)
    index = [slice(None)] * 3
    index[axis] = 1
    structure[tuple(index)] = ndimage.generate_binary_structure(2, connectivity)
    return structure


def _outside_air(air: np.ndarray, hull: np.ndarray) -> np.ndarray:
    """Air connected, within its axial slice, to air outside the body's hull."""
    from scipy import ndimage

    labels, _ = ndimage.label(air, structure=_in_plane(0))
    outside = np.unique(labels[air & ~hull])
    return np.isin(labels, outside[outside > 0])


def _airway(hu: np.ndarray, candidates: np.ndarray, frame: _Frame, s: ClassicalSettings) -> np.ndarray | None:
    """The trachea and main bronchi lumen (bool (z, y, x)), or None when none is found.

    Seed: the pure-air 3D component reaching most into the top ``airway_seed_depth_mm`` of the air
    inside the body. Grown through smoothed HU < ``airway_hu``; while the grown volume exceeds
    ``airway_max_ml`` (a leak into emphysematous or noisy lung) the threshold is lowered (Hu et al.).
    """
    import cc3d
    from scipy import ndimage

    slices = np.flatnonzero(candidates.any(axis=(1, 2)))
    if slices.size == 0:
        return None
    ys, xs = np.nonzero(candidates.any(axis=0))
    box = (slice(int(slices[0]), int(slices[-1]) + 1), slice(int(ys.min()), int(ys.max()) + 1),
           slice(int(xs.min()), int(xs.max()) + 1))
    inside = candidates[box]
    sz, sy, sx = frame.spacing_zyx
    smooth = ndimage.gaussian_filter(hu[box].astype(np.float32), (0.0, 1.0 / sy, 1.0 / sx), truncate=2.0)
    depth = max(1, int(round(s.airway_seed_depth_mm / sz)))
    top = slice(inside.shape[0] - depth, None) if frame.up > 0 else slice(0, depth)
    min_area = 40.0 / (sy * sx)      # voxels: a trachea has > 100 mm^2, segmental bronchi ~ 20 mm^2
    for threshold in np.arange(s.airway_hu, s.airway_floor_hu - 1e-6, -10.0):
        dark = (smooth < threshold) & inside
        labels = cc3d.connected_components(dark, connectivity=6)
        in_top = np.bincount(labels[top].ravel(), minlength=int(labels.max()) + 1)
        in_top[0] = 0
        if in_top.max() < min_area:
            return None
        seed = int(in_top.argmax())
        airway = labels == seed
        if airway.sum() * frame.voxel_ml <= s.airway_max_ml:
            out = np.zeros(candidates.shape, bool)
            out[box] = airway
            return out
    return None


def _select_lungs(candidates: np.ndarray, frame: _Frame, s: ClassicalSettings) -> np.ndarray:
    """The air pockets that are lung: big enough, and not gas under other pockets (bool (z, y, x))."""
    import cc3d

    labels = cc3d.connected_components(candidates, connectivity=6)
    counts = np.bincount(labels.ravel())
    counts[0] = 0
    if counts.max() == 0:
        return np.zeros(candidates.shape, bool)
    minimum = max(s.min_lung_ml / frame.voxel_ml, s.min_lung_fraction * counts.max())
    pockets = np.flatnonzero(counts >= minimum)
    # Most superior index of each pocket per (y, x) column, as z * up (larger = higher).
    z_index = np.arange(candidates.shape[0])[:, None, None] * frame.up
    tops = {}
    for p in pockets:
        inside = labels == p
        tops[p] = np.where(inside, z_index, np.iinfo(np.int64).min).max(axis=0)
    keep = []
    for p in pockets:
        others = [tops[q] for q in pockets if q != p]
        if others:
            highest_other = np.max(others, axis=0)
            zz, yy, xx = np.nonzero(labels == p)
            under = highest_other[yy, xx] > zz * frame.up
            if under.mean() >= s.below_fraction:
                continue
        keep.append(p)
    return np.isin(labels, keep)


@dataclass(frozen=True)
class _Split:
    """The plane between the lungs: voxels with ``normal . p > offset`` (patient mm) are the left
    lung. ``normal`` lies in the axial plane within 30 degrees of patient x; one lung: +-inf offset."""

    normal: tuple[float, float]     # (x, y) components
    offset: float

    def left(self, frame: _Frame, zz, yy, xx) -> np.ndarray:
        u = self.normal[0] * frame.patient(0, zz, yy, xx) + self.normal[1] * frame.patient(1, zz, yy, xx)
        return u > self.offset


def _split(lungs: np.ndarray, hull: np.ndarray, frame: _Frame, s: ClassicalSettings) -> _Split:
    """Two lungs or one, and the plane between them.

    Two lungs: the lung voxels projected on an axial direction (every 7.5 degrees) show a valley
    (the mediastinum) with lung of its own on each side (``min_side_fraction`` of the voxels,
    ``min_side_width_mm`` wide). Within 30 degrees of patient x (a patient lying a little rotated)
    the valley must fall under ``valley_fraction`` of the lower of the peaks around it; further
    round (a patient on the side) under ``far_valley_fraction``. Near directions win over far ones,
    then the deepest valley; the plane passes through the middle of its gap. One lung: no such
    valley; its side is its position against the body's midline, or against the scanner's isocentre
    (patient x = 0) when the FOV cuts the body at the side.
    """
    from scipy import ndimage

    zz, yy, xx = np.nonzero(lungs)
    px, py = frame.patient(0, zz, yy, xx), frame.patient(1, zz, yy, xx)
    width = max(2.0, min(frame.spacing_zyx[1:]))
    best = None                      # (far, ratio, |angle|, normal, valley position)
    for angle in sorted(np.deg2rad(np.arange(-90.0, 90.0, 7.5)), key=abs):
        far = abs(angle) > np.deg2rad(30.0) + 1e-9
        normal = (float(np.cos(angle)), float(np.sin(angle)))
        u = normal[0] * px + normal[1] * py
        lo, hi = float(u.min()), float(u.max())
        # Bins symmetric about the middle of the range: a mirrored image gives the mirrored profile.
        half = int(np.ceil(0.5 * (hi - lo) / width)) + 1
        start = 0.5 * (lo + hi) - half * width
        counts = np.bincount(((u - start) / width).astype(np.int64), minlength=2 * half)[:2 * half]
        profile = ndimage.gaussian_filter1d(counts.astype(float), 5.0 / width)
        centres = start + width * (np.arange(2 * half) + 0.5)
        left_peak = np.maximum.accumulate(profile)
        right_peak = np.maximum.accumulate(profile[::-1])[::-1]
        mass = np.cumsum(profile) / profile.sum()
        for i in range(1, len(profile) - 1):
            lower_peak = min(left_peak[i - 1], right_peak[i + 1])
            if lower_peak <= 0 or min(mass[i], 1.0 - mass[i]) < s.min_side_fraction or \
                    min(centres[i] - lo, hi - centres[i]) < s.min_side_width_mm:
                continue
            key = (far, profile[i] / lower_peak, abs(angle))
            if key[1] <= (s.far_valley_fraction if far else s.valley_fraction) and (best is None or key < best[:3]):
                best = (*key, normal, centres[i])
    if best is not None:
        normal, valley = best[3], best[4]
        u = normal[0] * px + normal[1] * py
        return _Split(normal, 0.5 * (u[u < valley].max() + u[u >= valley].min()))
    rows = np.unique(zz)
    section = hull[rows]
    midline = 0.0
    if not (section[:, :, 0].any() or section[:, :, -1].any()):
        hz, hy, hx = np.nonzero(section)
        midline = float(frame.patient(0, rows[hz], hy, hx).mean())
    return _Split((1.0, 0.0), -np.inf if px.mean() > midline else np.inf)


def _fill(part: np.ndarray, frame: _Frame, closing_mm: float) -> np.ndarray:
    """One lung closed in 3D with a ball of ``closing_mm``, then its holes filled in axial, coronal
    and sagittal planes.

    Computed in the lung's bounding box grown by the radius; where that passes the image border it
    is padded with background, so the closing does not fill the chest wall between two places where
    the lung touches the border (a corner of a tight FOV), and holes open to the border stay open.
    """
    from scipy import ndimage

    if not part.any():
        return part
    spacing = np.asarray(frame.spacing_zyx)
    pad = np.ceil(closing_mm / spacing).astype(int) + 1
    where = np.nonzero(part)
    lo = [int(w.min()) - p for w, p in zip(where, pad)]
    hi = [int(w.max()) + 1 + p for w, p in zip(where, pad)]
    box = tuple(slice(max(a, 0), min(b, n)) for a, b, n in zip(lo, hi, part.shape))
    beyond = [(max(-a, 0), max(b - n, 0)) for a, b, n in zip(lo, hi, part.shape)]
    a = np.pad(part[box], beyond)
    if closing_mm > 0:
        grown = ndimage.distance_transform_edt(~a, sampling=spacing) <= closing_mm
        a = a | (ndimage.distance_transform_edt(grown, sampling=spacing) > closing_mm)
    for axis in range(3):
        # Pad with foreground along the axis so the first and last planes fill like the others.
        padded = np.pad(a, [(1, 1) if k == axis else (0, 0) for k in range(3)], constant_values=True)
        filled = ndimage.binary_fill_holes(padded, structure=_in_plane(axis))
        a = filled[tuple(slice(1, -1) if k == axis else slice(None) for k in range(3))]
    out = np.zeros(part.shape, bool)
    out[box] = a[tuple(slice(before, a.shape[k] - after) for k, (before, after) in enumerate(beyond))]
    return out
