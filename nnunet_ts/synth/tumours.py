"""Lung tumours: lobulated shapes placed in the lung field, some against the chest wall or the
mediastinum, blended into the HU image with a blurred edge.

Shapes (in a ball of the nominal diameter D, 5-60 mm uniform by default):

* ``lobulated``: union of a rotated ellipsoid and 2-4 offset spherical lobes;
* ``perturbed_sphere``: a sphere whose radius varies with direction by a sum of three
  low-frequency cosines (about +-10-30 %).

The shape is clipped to the lung field and reduced to its connected part through the centre, so
every tumour is one lesion inside the lungs; an attached tumour's core reaches past the lung border,
so its clipped shape lies flat against the chest wall or mediastinum. The mask is
this shape before blurring; the image gets ``hu * w + background * (1 - w)`` with ``w`` the shape
blurred by a Gaussian of 0.5-2 mm, plus +-6 HU internal texture.
"""
from __future__ import annotations

from dataclasses import dataclass

import cc3d
import numpy as np
from scipy import ndimage

from nnunet_ts.synth.anatomy import Tissue
from nnunet_ts.synth.config import SynthConfig
from nnunet_ts.synth.grid import Box, Grid

ATTACHMENTS = ("free", "chest_wall", "mediastinum")
SHAPES = ("lobulated", "perturbed_sphere")
_NEIGHBOURS = {
    "chest_wall": (Tissue.FAT, Tissue.MUSCLE, Tissue.BONE_CORTEX, Tissue.BONE_MARROW),
    "mediastinum": (Tissue.MEDIASTINAL_FAT, Tissue.HEART, Tissue.GREAT_VESSEL, Tissue.AIRWAY),
}
_TRIES = 80
CORE = 0.5   # every shape contains the ball of CORE * radius around its centre


@dataclass(frozen=True)
class Lesion:
    """One inserted tumour. ``centre_zyx`` is a voxel index; sizes in mm, volume in mm^3."""

    centre_zyx: tuple[int, int, int]
    diameter_mm: float               # nominal: the shape fits in a ball of this diameter
    equivalent_diameter_mm: float    # of a sphere with the mask's volume
    volume_mm3: float
    n_voxels: int
    hu: float
    edge_sigma_mm: float
    attachment: str                  # one of ATTACHMENTS
    shape: str                       # one of SHAPES


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((3, 3)))
    return q * np.sign(np.diag(r))


def tumour_shape(rng: np.random.Generator, pz: np.ndarray, py: np.ndarray, px: np.ndarray,
                 radius: float, kind: str) -> np.ndarray:
    """Boolean shape on broadcastable offsets (mm) from the centre, inside a ball of ``radius``.

    The shape contains the ball of ``CORE * radius`` (the perturbed sphere's radius varies by at
    most +-30 %, the lobulated shape's core ellipsoid has semi-axes >= 0.55 radius).
    """
    if kind == "perturbed_sphere":
        dist = np.sqrt(pz ** 2 + py ** 2 + px ** 2) + 1e-6
        amplitudes = rng.uniform(0.04, 0.1, 3)
        r = np.ones(np.broadcast_shapes(pz.shape, py.shape, px.shape), np.float32)
        for a in amplitudes:
            v = rng.standard_normal(3)
            v /= np.linalg.norm(v)
            r += a * np.cos(rng.uniform(2.0, 4.5) * (pz * v[0] + py * v[1] + px * v[2]) / dist
                            + rng.uniform(0.0, 2 * np.pi))
        return dist <= r * (radius / (1.0 + amplitudes.sum()))
    rot = _random_rotation(rng)
    axes = radius * rng.uniform(0.55, 0.85, 3)
    q = [rot[0, i] * pz + rot[1, i] * py + rot[2, i] * px for i in range(3)]
    inside = (q[0] / axes[0]) ** 2 + (q[1] / axes[1]) ** 2 + (q[2] / axes[2]) ** 2 <= 1.0
    for _ in range(int(rng.integers(2, 5))):
        v = rng.standard_normal(3)
        v /= np.linalg.norm(v)
        offset = radius * rng.uniform(0.25, 0.5)
        lobe = min(radius - offset, radius * rng.uniform(0.3, 0.55))
        c = offset * v
        inside |= (pz - c[0]) ** 2 + (py - c[1]) ** 2 + (px - c[2]) ** 2 <= lobe ** 2
    return inside


@dataclass(frozen=True)
class _Site:
    centre: tuple[int, int, int]
    radius: float
    attachment: str


def _find_site(rng: np.random.Generator, grid: Grid, labels: np.ndarray, lung_voxels: np.ndarray,
               radius: float, attachment: str, taken: list[_Site]) -> _Site | None:
    """A voxel centre for a tumour of ``radius`` (mm) with the given attachment, or None.

    Free: 97 % of the ball is lung. Attached: the core (the ball of radius ``CORE * radius`` that
    every shape contains, at least the centre's 26-neighbourhood) reaches outside the lung, into
    the attachment's tissues for >= 70 % of those voxels, so the clipped shape touches them; and
    >= 60 % of the whole ball is lung, so the tumour keeps most of its size.
    """
    spacing = np.asarray(grid.spacing)
    core = max(CORE * radius, float(spacing.max()))
    reach = np.ceil(max(radius, core) / spacing).astype(int)
    dz, dy, dx = (np.arange(-r, r + 1, dtype=np.float32) * s for r, s in zip(reach, spacing))
    d2 = dz[:, None, None] ** 2 + dy[None, :, None] ** 2 + dx[None, None, :] ** 2
    ball, core_ball = d2 <= radius ** 2, d2 <= core ** 2
    shape = np.asarray(grid.shape)
    gap = 2.0 * spacing.max()
    for _ in range(_TRIES):
        centre = np.array(np.unravel_index(lung_voxels[rng.integers(lung_voxels.size)], grid.shape))
        lo, hi = centre - reach, centre + reach + 1
        if np.any(lo < 0) or np.any(hi > shape):
            continue
        # Keep tumours apart so each stays its own connected component.
        if any(np.linalg.norm((centre - t.centre) * spacing) < radius + t.radius + gap for t in taken):
            continue
        tissue = labels[tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))]
        lung_fraction = float(np.mean(tissue[ball] == Tissue.LUNG))
        if attachment == "free":
            ok = lung_fraction >= 0.97
        else:
            outside = tissue[core_ball]
            outside = outside[outside != Tissue.LUNG]
            ok = lung_fraction >= 0.6 and outside.size > 0 and \
                float(np.isin(outside, _NEIGHBOURS[attachment]).mean()) >= 0.7
        if ok:
            return _Site(tuple(int(c) for c in centre), radius, attachment)
    return None


def insert_tumours(hu: np.ndarray, labels: np.ndarray, grid: Grid, rng: np.random.Generator,
                   config: SynthConfig) -> tuple[np.ndarray, list[Lesion]]:
    """Draw 0-3 tumours into ``hu`` (float32, in place); return (mask uint8 (z, y, x), lesions).

    The count follows ``config.tumour_count_probs``. A tumour that finds no site of its attachment
    type is placed free in the parenchyma; one that finds no site at all is shrunk and retried,
    and dropped at the minimum diameter (rare; tiny lungs only).
    """
    mask = np.zeros(grid.shape, np.uint8)
    lung_voxels = np.flatnonzero(labels == Tissue.LUNG)
    lesions: list[Lesion] = []
    n = int(rng.choice(len(config.tumour_count_probs), p=config.tumour_count_probs))
    if lung_voxels.size == 0:
        return mask, lesions
    d_min, d_max = config.tumour_diameter_mm
    taken: list[_Site] = []
    for _ in range(n):
        diameter = float(rng.uniform(d_min, d_max) if config.tumour_diameter_sampling == "uniform"
                         else np.exp(rng.uniform(np.log(d_min), np.log(d_max))))
        attachment = ATTACHMENTS[int(rng.choice(3, p=config.tumour_attach_probs))]
        site = None
        while site is None:
            site = _find_site(rng, grid, labels, lung_voxels, diameter / 2, attachment, taken)
            if site is None and attachment != "free":
                attachment = "free"
            elif site is None:
                if diameter <= d_min:
                    break
                diameter = max(d_min, 0.75 * diameter)
        if site is None:
            continue
        taken.append(site)
        lesions.append(_draw(hu, mask, labels, grid, rng, config, site, diameter))
    return mask, lesions


def _draw(hu: np.ndarray, mask: np.ndarray, labels: np.ndarray, grid: Grid, rng: np.random.Generator,
          config: SynthConfig, site: _Site, diameter: float) -> Lesion:
    sigma_mm = float(rng.uniform(*config.tumour_edge_sigma_mm))
    spacing = np.asarray(grid.spacing)
    centre_mm = grid.position_of(site.centre)
    pad = site.radius + 3.0 * sigma_mm + spacing.max()
    box: Box = grid.box_around(centre_mm - pad, centre_mm + pad)
    z, y, x = grid.coords(box)
    kind = SHAPES[int(rng.integers(len(SHAPES)))]
    shape = tumour_shape(rng, z - centre_mm[0], y - centre_mm[1], x - centre_mm[2], site.radius, kind)
    shape &= labels[box] == Tissue.LUNG
    components = cc3d.connected_components(shape, connectivity=26)
    local = tuple(c - s.start for c, s in zip(site.centre, box))
    shape = components == components[local]
    mask[box] |= shape.astype(np.uint8)

    value = float(rng.uniform(*config.tumour_hu))
    weight = ndimage.gaussian_filter(shape.astype(np.float32), sigma_mm / spacing, truncate=3.0)
    texture = ndimage.gaussian_filter(rng.standard_normal(shape.shape).astype(np.float32), 1.0)
    texture *= 6.0 / max(float(texture.std()), 1e-6)
    region = hu[box]
    region += weight * (value + texture - region)
    n_voxels = int(shape.sum())
    volume = n_voxels * float(np.prod(spacing))
    return Lesion(centre_zyx=site.centre, diameter_mm=round(diameter, 2),
                  equivalent_diameter_mm=round(float((6.0 * volume / np.pi) ** (1.0 / 3.0)), 2),
                  volume_mm3=round(volume, 1), n_voxels=n_voxels, hu=round(value, 1),
                  edge_sigma_mm=round(sigma_mm, 2), attachment=site.attachment, shape=kind)
