"""One synthetic thorax CT with its tumour mask: :func:`generate_case`.

Steps: acquisition (spacing, FOV, scan window) -> anatomy -> tissue labels -> HU with texture ->
vessel and bronchus trees -> tumours (mask = their shape before blurring) -> in-plane blur of the
scanner's point spread -> correlated Gaussian noise -> int16 HU clipped to [-1024, 3071].

Everything is drawn from ``numpy.random.default_rng(seed)`` in a fixed order, so a seed gives
bit-identical arrays on any machine with the same numpy/scipy.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from nnunet_ts.io.images import Geometry
from nnunet_ts.synth.anatomy import Anatomy, Tissue, sample_anatomy, tissue_map
from nnunet_ts.synth.config import SynthConfig
from nnunet_ts.synth.grid import Grid
from nnunet_ts.synth.hu import tissue_hu
from nnunet_ts.synth.noise import scanner_noise
from nnunet_ts.synth.tumours import Lesion, insert_tumours
from nnunet_ts.synth.vessels import grow_lung_trees, render_trees

HU_MIN, HU_MAX = -1024, 3071
IDENTITY = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)


@dataclass(frozen=True)
class Acquisition:
    """Scan settings of one case."""

    spacing_zyx: tuple[float, float, float]   # mm
    noise_sigma_hu: float
    noise_correlation_vox: float              # in-plane Gaussian sigma of the noise, voxels
    blur_sigma_vox: float                     # in-plane point-spread sigma, voxels


@dataclass(frozen=True)
class SyntheticCase:
    """A generated case. Arrays are (z, y, x) on ``geometry``.

    Attributes:
        ct: int16 HU in [-1024, 3071].
        mask: uint8 {0, 1}, the tumours' shapes before blurring.
        tissue: uint8 :class:`~nnunet_ts.synth.anatomy.Tissue` labels (before vessels and tumours).
        lesions: one entry per tumour (0-3 by default); ``len(lesions)`` = 3D components of ``mask``.
    """

    seed: int
    ct: np.ndarray
    mask: np.ndarray
    tissue: np.ndarray
    geometry: Geometry
    lesions: tuple[Lesion, ...]
    acquisition: Acquisition

    @property
    def lungs(self) -> np.ndarray:
        """Lung field (bool): parenchyma including its vessels, bronchi and tumours."""
        return self.tissue == Tissue.LUNG


def _sample_acquisition(rng: np.random.Generator, config: SynthConfig) -> Acquisition:
    s = round(float(rng.uniform(*config.spacing_xy_mm)), 4)
    t = round(float(rng.uniform(*config.slice_thickness_mm)), 4)
    return Acquisition(spacing_zyx=(t, s, s),
                       noise_sigma_hu=float(rng.uniform(*config.noise_sigma_hu)),
                       noise_correlation_vox=float(rng.uniform(*config.noise_correlation_vox)),
                       blur_sigma_vox=float(rng.uniform(0.35, 0.6)))


def _place_grid(rng: np.random.Generator, shape: tuple[int, int, int], acq: Acquisition,
                anat: Anatomy) -> Grid:
    """Grid over the body: in-plane off-centre by a few % of the FOV, z window over the lungs."""
    t, s, _ = acq.spacing_zyx
    nz, ny, nx = shape
    room_y = max(0.5 * ny * s - anat.body_b - 10.0, 0.0)
    room_x = max(0.5 * nx * s - anat.body_a - 5.0, 0.0)
    centre_y = float(rng.uniform(-0.5, 0.3)) * room_y     # more room kept posteriorly for the table
    centre_x = float(rng.uniform(-0.4, 0.4)) * room_x
    # Scan window: inside the lungs when shorter than them, around them when longer.
    slack = 0.5 * abs(anat.lung_height - nz * t)
    centre_z = float(rng.uniform(-0.8, 0.8)) * slack
    corner = (centre_z - 0.5 * (nz - 1) * t, -centre_y - 0.5 * (ny - 1) * s, -centre_x - 0.5 * (nx - 1) * s)
    return Grid(shape, acq.spacing_zyx, corner)


def _geometry(rng: np.random.Generator, grid: Grid) -> Geometry:
    """Scanner coordinates: FOV centred near the isocentre (x, y), table position varies (z)."""
    t, s, _ = grid.spacing
    nz, ny, nx = grid.shape
    origin = (round(-0.5 * (nx - 1) * s + float(rng.uniform(-15.0, 15.0)), 2),
              round(-0.5 * (ny - 1) * s + float(rng.uniform(-15.0, 15.0)), 2),
              round(float(rng.uniform(-400.0, -100.0)), 2))
    return Geometry(shape_zyx=grid.shape, spacing=(s, s, t), origin=origin, direction=IDENTITY)


def generate_case(seed: int, config: SynthConfig | None = None) -> SyntheticCase:
    """Generate one synthetic chest CT with tumours.

    Args:
        seed: any non-negative integer; equal seeds (and configs) give identical cases.
        config: sampling ranges; ``SynthConfig()`` (compact preset, 64 x 128 x 128) by default.

    Returns:
        The case: CT int16 HU and mask uint8, (z, y, x) on ``config.shape_zyx``.
    """
    config = config or SynthConfig()
    rng = np.random.default_rng(seed)
    acq = _sample_acquisition(rng, config)
    shape = tuple(int(n) for n in config.shape_zyx)
    # Body width is a fraction of the x FOV; a short y axis limits it too (AP <= ~0.7 x width).
    fov_mm = min(shape[2], 1.25 * shape[1]) * acq.spacing_zyx[2]
    anat = sample_anatomy(rng, fov_mm, config)
    grid = _place_grid(rng, shape, acq, anat)
    geometry = _geometry(rng, grid)

    tissue = tissue_map(grid, anat)
    hu, means = tissue_hu(tissue, grid, anat, rng, config)
    lungs = tissue == Tissue.LUNG
    trees = grow_lung_trees(rng, grid, anat, lungs)
    render_trees(hu, grid, trees, lungs, vessel_hu=float(means[Tissue.GREAT_VESSEL]),
                 wall_hu=float(rng.uniform(-60.0, 20.0)))
    mask, lesions = insert_tumours(hu, tissue, grid, rng, config)

    hu = ndimage.gaussian_filter(hu, (0.0, acq.blur_sigma_vox, acq.blur_sigma_vox), truncate=3.0)
    hu += scanner_noise(rng, shape, acq.noise_sigma_hu, acq.noise_correlation_vox)
    np.rint(hu, out=hu)
    np.clip(hu, HU_MIN, HU_MAX, out=hu)
    return SyntheticCase(seed=int(seed), ct=hu.astype(np.int16), mask=mask, tissue=tissue,
                         geometry=geometry, lesions=tuple(lesions), acquisition=acq)
