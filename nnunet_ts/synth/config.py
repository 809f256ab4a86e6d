"""Settings of the synthetic thorax CT generator: one frozen, commented dataclass.

Spacing and field of view
-------------------------
The image shape (z, y, x) is fixed by the config; what varies per case is the voxel spacing, so the
field of view (FOV) is ``shape * spacing``. A real thorax needs an in-plane FOV of about 300-450 mm,
so the two presets differ in how they get there:

* :meth:`SynthConfig.compact` (the default, used by tests, demos and the benchmark): few voxels
  (e.g. 128 in-plane) with the spacing scaled so the whole thorax fits: in-plane spacing =
  FOV / size with an FOV of 320-450 mm (2.5-3.5 mm at 128 px), slice thickness = z coverage /
  n_slices with a coverage of 160-300 mm (1.7-3.1 mm at 96 slices, 2.5-4.7 mm at 64).
* :meth:`SynthConfig.clinical`: the clinical in-plane spacing 0.6-1.0 mm on a 512 px
  grid (FOV 307-512 mm) and slice thickness in 1-5 mm (as far as the z coverage allows).

Everything anatomical is sampled in mm (body size, tumour diameters 5-60 mm, vessel radii), so
both presets show the same patients at different resolution.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

Range = tuple[float, float]
MIN_SIZE = 16     # voxels per axis; below this the thorax is a handful of blobs

# Physical extent the compact preset scales its spacing to (mm).
_FOV_MM: Range = (320.0, 450.0)
_Z_COVERAGE_MM: Range = (160.0, 300.0)


def _check_range(name: str, value: Sequence[float], low: float | None = None,
                 high: float | None = None) -> None:
    if len(value) != 2 or not value[0] <= value[1]:
        raise ValueError(f"{name} must be a (min, max) pair with min <= max, got {value}")
    if low is not None and value[0] < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")
    if high is not None and value[1] > high:
        raise ValueError(f"{name} must be <= {high}, got {value}")


def _check_probs(name: str, value: Sequence[float]) -> None:
    if not value or min(value) < 0 or abs(sum(value) - 1.0) > 1e-6:
        raise ValueError(f"{name} must be non-negative probabilities summing to 1, got {value}")


@dataclass(frozen=True)
class SynthConfig:
    """How synthetic cases are drawn. Ranges are (min, max), sampled uniformly per case.

    Raises:
        ValueError: an inconsistent field (empty range, probabilities not summing to 1, ...).
    """

    # Image grid (z, y, x) in voxels; z runs inferior -> superior, y anterior -> posterior,
    # x patient right -> left (LPS with identity direction).
    shape_zyx: tuple[int, int, int] = (64, 128, 128)
    # In-plane pixel spacing (mm); the in-plane FOV is shape * spacing.
    spacing_xy_mm: Range = (320.0 / 128, 450.0 / 128)
    # Slice thickness = slice spacing (mm).
    slice_thickness_mm: Range = (160.0 / 64, 300.0 / 64)
    # Lateral body width as a fraction of the in-plane FOV (patient size relative to the FOV).
    body_fraction: Range = (0.72, 0.92)
    # Antero-posterior / lateral body diameter.
    body_ap_ratio: Range = (0.62, 0.76)
    # Apex-to-diaphragm height of the lungs (mm); the scan covers a window of it.
    lung_height_mm: Range = (230.0, 290.0)
    # Subcutaneous fat thickness (mm), HU -120..-80.
    fat_thickness_mm: Range = (6.0, 28.0)
    # Mean parenchyma HU (before vessels and noise); dependent lung is up to 40 HU denser.
    lung_hu: Range = (-870.0, -830.0)
    # Muscle / mediastinal soft tissue HU.
    soft_tissue_hu: Range = (38.0, 52.0)
    # Unenhanced blood in vessels and heart (HU): same range as tumours, so vessels are distractors.
    vessel_hu: Range = (35.0, 50.0)
    # Gaussian scanner noise standard deviation (HU).
    noise_sigma_hu: Range = (10.0, 30.0)
    # In-plane correlation of the noise: Gaussian kernel sigma in voxels (0 = white noise).
    noise_correlation_vox: Range = (0.0, 0.7)
    # P(0 tumours), P(1), P(2), P(3): most cases have a tumour so a method can learn.
    tumour_count_probs: tuple[float, ...] = (0.1, 0.5, 0.3, 0.1)
    # Nominal tumour diameter (mm): the shape fits in a ball of this diameter.
    tumour_diameter_mm: Range = (5.0, 60.0)
    # How the diameter is drawn from its range: "uniform" gives lesion volumes nearer the paper's MSD
    # Lung cohort; "log-uniform" favours small nodules (measured volumes: docs/datasets.md,
    # "Synthetic data").
    tumour_diameter_sampling: str = "uniform"
    # Mean tumour HU; internal texture adds about +-10 HU.
    tumour_hu: Range = (0.0, 60.0)
    # Sigma (mm) of the blur of the tumour edge (the mask is the shape before blurring).
    tumour_edge_sigma_mm: Range = (0.5, 2.0)
    # P(free in the parenchyma), P(touching the chest wall), P(touching the mediastinum).
    tumour_attach_probs: tuple[float, float, float] = (0.5, 0.3, 0.2)
    # P(1 scan), P(2 scans), ... per patient; patients never straddle subsets.
    scans_per_patient: tuple[float, ...] = (0.7, 0.3)

    def __post_init__(self) -> None:
        if len(self.shape_zyx) != 3 or min(self.shape_zyx) < MIN_SIZE:
            raise ValueError(f"shape_zyx must be 3 sizes (z, y, x) of at least {MIN_SIZE} voxels, "
                             f"got {self.shape_zyx}")
        _check_range("spacing_xy_mm", self.spacing_xy_mm, low=0.05)
        _check_range("slice_thickness_mm", self.slice_thickness_mm, low=0.05)
        _check_range("body_fraction", self.body_fraction, low=0.3, high=0.98)
        _check_range("body_ap_ratio", self.body_ap_ratio, low=0.4, high=1.0)
        _check_range("lung_height_mm", self.lung_height_mm, low=50.0)
        _check_range("fat_thickness_mm", self.fat_thickness_mm, low=0.0)
        _check_range("lung_hu", self.lung_hu, low=-1000.0, high=-500.0)
        _check_range("soft_tissue_hu", self.soft_tissue_hu)
        _check_range("vessel_hu", self.vessel_hu)
        _check_range("noise_sigma_hu", self.noise_sigma_hu, low=0.0)
        _check_range("noise_correlation_vox", self.noise_correlation_vox, low=0.0)
        _check_probs("tumour_count_probs", self.tumour_count_probs)
        _check_range("tumour_diameter_mm", self.tumour_diameter_mm, low=1.0)
        if self.tumour_diameter_sampling not in ("uniform", "log-uniform"):
            raise ValueError(f"tumour_diameter_sampling must be 'uniform' or 'log-uniform', "
                             f"got {self.tumour_diameter_sampling!r}")
        _check_range("tumour_hu", self.tumour_hu)
        _check_range("tumour_edge_sigma_mm", self.tumour_edge_sigma_mm, low=0.0)
        _check_probs("tumour_attach_probs", self.tumour_attach_probs)
        if len(self.tumour_attach_probs) != 3:
            raise ValueError(f"tumour_attach_probs needs 3 entries (free, chest wall, mediastinum), "
                             f"got {self.tumour_attach_probs}")
        _check_probs("scans_per_patient", self.scans_per_patient)

    @property
    def max_tumours(self) -> int:
        return len(self.tumour_count_probs) - 1

    @classmethod
    def compact(cls, shape_zyx: Sequence[int] = (64, 128, 128), **overrides) -> SynthConfig:
        """Few voxels, whole thorax: spacing = physical extent / shape (see the module docstring)."""
        z, y, x = (int(s) for s in shape_zyx)
        spacing = (_FOV_MM[0] / max(x, y), _FOV_MM[1] / max(x, y))
        thickness = (_Z_COVERAGE_MM[0] / z, _Z_COVERAGE_MM[1] / z)
        return cls(shape_zyx=(z, y, x), spacing_xy_mm=spacing, slice_thickness_mm=thickness, **overrides)

    @classmethod
    def clinical(cls, shape_zyx: Sequence[int] = (128, 512, 512), **overrides) -> SynthConfig:
        """Clinical resolution: 0.6-1.0 mm in-plane, slice thickness within 1-5 mm.

        The thickness range is the part of 1-5 mm that keeps the z coverage near 160-300 mm; with
        few slices the coverage is the thin end of that (a slab of the thorax).
        """
        z, y, x = (int(s) for s in shape_zyx)
        low = min(max(_Z_COVERAGE_MM[0] / z, 1.0), 5.0)
        high = min(max(_Z_COVERAGE_MM[1] / z, 1.0), 5.0)
        return cls(shape_zyx=(z, y, x), spacing_xy_mm=(0.6, 1.0), slice_thickness_mm=(low, high),
                   **overrides)

    @classmethod
    def preset(cls, name: str, shape_zyx: Sequence[int] | None = None, **overrides) -> SynthConfig:
        """``compact`` or ``clinical``, with the preset's default shape when ``shape_zyx`` is None."""
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
        factory = getattr(cls, name)
        return factory(**overrides) if shape_zyx is None else factory(shape_zyx, **overrides)


PRESETS: tuple[str, ...] = ("compact", "clinical")
