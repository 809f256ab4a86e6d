"""Synthetic chest CTs reshaped the way clinical series are, with their known lungs.

A synthetic case (:func:`nnunet_ts.synth.generate_case`, neck to upper abdomen, large tumours against
the chest wall and the mediastinum) is cut and edited into the geometries real series come in: tight
fields of view through the lungs, apex or bases only, one lung (FOV through the mediastinum, or the
other lung replaced by soft tissue as after a pneumonectomy or a complete collapse), and gas in the
stomach and bowel (the generator has none: it is added here, in the test's CT, at least 8 mm below
the lungs, the diaphragm and the stomach wall). ``tight_circle`` is a square tight FOV whose corners
outside the inscribed reconstruction circle hold padding (-3024), not image: the lungs touch the circle.
Crops keep every voxel's patient position (``crop_geometry``), so sides stay decidable from patient
coordinates.

Used by tests/test_lung_mask.py and scripts/benchmarks/lung_mask.py.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from nnunet_ts.datasets.lung_crop import LungCrop, crop_geometry
from nnunet_ts.io.images import Geometry
from nnunet_ts.synth import SynthConfig, generate_case
from nnunet_ts.synth.anatomy import Tissue

# Neck to upper abdomen (64 slices of 4.8-5.2 mm), 2.9-4.0 mm in-plane; 2-3 tumours of 20-60 mm,
# most against the chest wall or the mediastinum.
CONFIG = replace(SynthConfig.compact((64, 112, 112), tumour_count_probs=(0.0, 0.0, 0.5, 0.5),
                                     tumour_diameter_mm=(20.0, 60.0), tumour_attach_probs=(0.2, 0.4, 0.4)),
                 slice_thickness_mm=(4.8, 5.2))
GEOMETRIES = ("full", "tight_left_right", "tight_front_back", "tight_all_sides", "tight_circle", "apex_only",
              "bases_only", "one_lung_fov", "pneumonectomy", "abdominal_gas")
PADDING_HU = -3024      # what many scanners store outside the reconstruction circle
SOFT_TISSUE_HU = 40.0


@dataclass(frozen=True)
class Scan:
    """A CT (int16 HU (z, y, x)) on ``geometry`` with its true ``lungs`` (bool, tumours included),
    tumour ``mask`` (uint8), which sides hold lung (``sides``: "right", "left") and the ``gas`` added
    below the lungs (bool)."""

    name: str
    seed: int
    ct: np.ndarray
    lungs: np.ndarray
    mask: np.ndarray
    geometry: Geometry
    sides: tuple[str, ...]
    gas: np.ndarray | None = None


def _lung_sides(lungs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(right, left) lung of a full synthetic case: identity direction, so the right lung has the
    smaller x indices; the mediastinum keeps the two apart."""
    import cc3d

    labels = cc3d.connected_components(lungs, connectivity=26)
    counts = np.bincount(labels.ravel())
    counts[0] = 0
    a, b = np.argsort(counts)[::-1][:2]
    xa, xb = (np.nonzero(labels == v)[2].mean() for v in (a, b))
    right, left = (a, b) if xa < xb else (b, a)
    return labels == right, labels == left


def _crop(name: str, scan: Scan, start: tuple[int, int, int], stop: tuple[int, int, int]) -> Scan:
    crop = LungCrop("whole", start, stop)
    lungs = scan.lungs[crop.slices]
    sides = tuple(side for side, part in zip(("right", "left"), _lung_sides(scan.lungs))
                  if part[crop.slices].sum() > 0.05 * part.sum())
    gas = None if scan.gas is None else scan.gas[crop.slices]
    return Scan(name, scan.seed, np.ascontiguousarray(scan.ct[crop.slices]), lungs, scan.mask[crop.slices],
                crop_geometry(scan.geometry, crop), sides, gas)


def _add_gas(ct: np.ndarray, tissue: np.ndarray, lungs: np.ndarray, spacing_zyx,
             rng) -> tuple[np.ndarray, np.ndarray]:
    """Stomach gas under the left dome (a ball of 25 mm) and four bowel gas bubbles (6-10 mm) in the
    upper abdomen, all at least 8 mm from the lungs; returns the CT with the gas blended in, and the gas."""
    from scipy import ndimage

    spacing = np.asarray(spacing_zyx)
    to_lungs = ndimage.distance_transform_edt(~lungs, sampling=spacing)
    room = (tissue == Tissue.ABDOMEN) & (to_lungs >= 8.0)
    gas = np.zeros(ct.shape, bool)
    if room.any():
        grid = np.indices(ct.shape).reshape(3, -1).T * spacing
        # Stomach: its top near the dome.
        where = np.flatnonzero(room.ravel())
        centre = grid[where[np.argmin(np.abs(to_lungs.ravel()[where] - 20.0))]]
        gas |= (np.linalg.norm(grid - centre, axis=1) <= 25.0).reshape(ct.shape)
        for _ in range(4):
            centre = grid[where[rng.integers(where.size)]]
            gas |= (np.linalg.norm(grid - centre, axis=1) <= rng.uniform(6.0, 10.0)).reshape(ct.shape)
        gas &= room
    weight = ndimage.gaussian_filter(gas.astype(np.float32), (0.0, 0.5, 0.5))
    hu = ct.astype(np.float32)
    hu += weight * (-1000.0 + rng.normal(0.0, 15.0, ct.shape) - hu)
    return np.clip(np.rint(hu), -1024, 3071).astype(np.int16), gas


def make_scans(seed: int, geometries: tuple[str, ...] = GEOMETRIES) -> list[Scan]:
    """The named geometries of one synthetic case (see the module docstring)."""
    case = generate_case(seed, CONFIG)
    rng = np.random.default_rng(seed + 1000)
    full = Scan("full", seed, case.ct, case.lungs, case.mask, case.geometry, ("right", "left"))
    spacing = case.geometry.spacing_zyx
    nz, ny, nx = case.ct.shape
    (z0, y0, x0), (z1, y1, x1) = (np.array([w.min() for w in np.nonzero(case.lungs)]),
                                  np.array([w.max() + 1 for w in np.nonzero(case.lungs)]))
    cut_y, cut_x = (int(round(10.0 / s)) for s in spacing[1:])        # 10 mm into the lungs
    height = z1 - z0
    right, left = _lung_sides(case.lungs)
    midline = int(round(0.5 * (np.nonzero(right)[2].max() + np.nonzero(left)[2].min())))
    scans = []
    for name in geometries:
        if name == "full":
            scans.append(full)
        elif name == "tight_left_right":
            scans.append(_crop(name, full, (0, 0, x0 + cut_x), (nz, ny, x1 - cut_x)))
        elif name == "tight_front_back":
            scans.append(_crop(name, full, (0, y0 + cut_y, 0), (nz, y1 - cut_y, nx)))
        elif name == "tight_all_sides":
            scans.append(_crop(name, full, (0, y0 + cut_y, x0 + cut_x), (nz, y1 - cut_y, x1 - cut_x)))
        elif name == "tight_circle":
            side = x1 - x0 - 2 * cut_x
            top = max(int(round(0.5 * (y0 + y1) - 0.5 * side)), 0)
            square = _crop(name, full, (0, top, x0 + cut_x), (nz, top + side, x1 - cut_x))
            n_y, n_x = square.ct.shape[1:]
            yy, xx = np.ogrid[:n_y, :n_x]
            outside = ((yy - 0.5 * (n_x - 1)) ** 2 + (xx - 0.5 * (n_x - 1)) ** 2) > (0.5 * n_x) ** 2
            ct = square.ct.copy()
            ct[:, outside] = PADDING_HU
            mask = np.where(outside, 0, square.mask).astype(np.uint8)
            scans.append(Scan(name, seed, ct, square.lungs & ~outside, mask, square.geometry, square.sides))
        elif name == "apex_only":
            scans.append(_crop(name, full, (int(z1 - 0.35 * height), 0, 0), (nz, ny, nx)))
        elif name == "bases_only":
            gassy, gas = _add_gas(case.ct, case.tissue, case.lungs, spacing, rng)
            scans.append(_crop(name, Scan(name, seed, gassy, case.lungs, case.mask, case.geometry, (), gas),
                               (0, 0, 0), (int(z0 + 0.35 * height), ny, nx)))
        elif name == "one_lung_fov":
            scans.append(_crop(name, full, (0, 0, 0), (nz, ny, midline)))
        elif name == "pneumonectomy":
            ct = case.ct.copy()
            ct[left] = np.rint(rng.normal(SOFT_TISSUE_HU, 15.0, int(left.sum()))).astype(np.int16)
            mask = np.where(left, 0, case.mask).astype(np.uint8)
            scans.append(Scan(name, seed, ct, right, mask, case.geometry, ("right",)))
        elif name == "abdominal_gas":
            gassy, gas = _add_gas(case.ct, case.tissue, case.lungs, spacing, rng)
            scans.append(Scan(name, seed, gassy, case.lungs, case.mask, case.geometry, ("right", "left"), gas))
        else:
            raise ValueError(f"unknown geometry {name!r}; choose from {GEOMETRIES}")
    return scans
