"""Image reading/writing with geometry, and the geometry checks every command relies on.

Arrays are numpy in SimpleITK's order (z, y, x). :class:`Geometry` keeps SimpleITK's own order
for spacing and origin (x, y, z), in mm, so it can be written back unchanged. Every image a command
reads goes through :func:`read_sitk` (or :func:`read_header`), which first checks that the file is
whole (``io.image_files``).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nnunet_ts.errors import InputError
from nnunet_ts.io.image_files import image_information, verify_image_file


@dataclass(frozen=True)
class Geometry:
    """Voxel grid of an image. spacing/origin in mm, (x, y, z) as SimpleITK; shape is (z, y, x)."""

    shape_zyx: tuple[int, int, int]
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]
    direction: tuple[float, ...]

    @property
    def spacing_zyx(self) -> tuple[float, float, float]:
        return self.spacing[2], self.spacing[1], self.spacing[0]

    @property
    def voxel_volume_mm3(self) -> float:
        return float(np.prod(self.spacing))

    def mismatch(self, other: Geometry, atol: float = 1e-3) -> str | None:
        """A description of how two grids differ (None when they agree within ``atol`` mm)."""
        if self.shape_zyx != other.shape_zyx:
            return f"size (z, y, x) {self.shape_zyx} vs {other.shape_zyx}"
        for name in ("spacing", "origin", "direction"):
            a, b = np.asarray(getattr(self, name)), np.asarray(getattr(other, name))
            if not np.allclose(a, b, atol=atol, rtol=0):
                return f"{name} {tuple(np.round(a, 4))} vs {tuple(np.round(b, 4))}"
        return None


def geometry_of(image) -> Geometry:
    """Geometry of a SimpleITK image."""
    size = image.GetSize()
    return Geometry(shape_zyx=(size[2], size[1], size[0]), spacing=tuple(image.GetSpacing()),
                    origin=tuple(image.GetOrigin()), direction=tuple(image.GetDirection()))


def read_sitk(path: str | Path, what: str = "image", finite: bool = False):
    """Read a 3D single-channel image as a SimpleITK image, after checking the file is whole
    (and, with ``finite``, that it holds no NaN or infinite value).

    The one checked reader: :func:`read_image` and every command go through it. SimpleITK reads a
    truncated ``.nii``/``.nii.gz`` (and a damaged compressed ``.mha``) without error, filling the
    missing voxels with zeros, so :func:`verify_image_file` checks the file first.

    Raises:
        InputError: missing, truncated, corrupt, unreadable, not 3D, not single-channel (or not finite).
    """
    import SimpleITK as sitk

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{what} {path} does not exist")
    verify_image_file(path, what)
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[-1] if str(exc).strip() else "unknown reason"
        raise InputError(f"{what} {path} cannot be read ({first}); the file is corrupt or not an "
                         f"image format SimpleITK reads (use NIfTI .nii.gz)") from None
    if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(f"{what} {path} must be a 3D single-channel image, got dimension "
                         f"{image.GetDimension()} with {image.GetNumberOfComponentsPerPixel()} components")
    if finite:
        check_finite(path, sitk.GetArrayViewFromImage(image), what)
    return image


def read_image(path: str | Path, what: str = "image") -> tuple[np.ndarray, Geometry]:
    """Read a 3D image as (array (z, y, x), geometry), checked by :func:`read_sitk`.

    Raises:
        InputError: missing, truncated/corrupt, unreadable, not 3D, or containing NaN/inf.
    """
    import SimpleITK as sitk

    path = Path(path)
    image = read_sitk(path, what)
    array = sitk.GetArrayFromImage(image)
    check_finite(path, array, what)
    return array, geometry_of(image)


def check_finite(path: Path, array: np.ndarray, what: str = "image") -> None:
    """Raise InputError when a float image read from ``path`` holds NaN or infinite values."""
    if np.issubdtype(array.dtype, np.floating) and not _all_finite(Path(path), array):
        raise InputError(f"{what} {path} contains NaN or infinite values; fix or drop this case")


def read_header(path: str | Path, what: str = "image") -> Geometry:
    """The geometry of an image from its header, after checking the file is whole.

    Raises:
        InputError: missing, truncated, corrupt or unreadable.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{what} {path} does not exist")
    verify_image_file(path, what)
    info = image_information(path, what)
    size = info.GetSize()
    return Geometry((size[2], size[1], size[0]), tuple(info.GetSpacing()), tuple(info.GetOrigin()),
                    tuple(info.GetDirection()))


def _all_finite(path: Path, array: np.ndarray) -> bool:
    """ITK's NIfTI reader silently turns NaN into 0, so float NIfTI files are checked on disk."""
    if not np.isfinite(array).all():
        return False
    if path.name.endswith((".nii", ".nii.gz")):
        import nibabel as nib

        return bool(np.isfinite(np.asanyarray(nib.load(str(path)).dataobj)).all())
    return True


def write_image(path: str | Path, array: np.ndarray, geometry: Geometry) -> None:
    """Write an array (z, y, x) with the given geometry (format from the file suffix)."""
    import SimpleITK as sitk

    if tuple(array.shape) != tuple(geometry.shape_zyx):
        raise ValueError(f"array shape {array.shape} does not match geometry {geometry.shape_zyx}")
    image = sitk.GetImageFromArray(np.ascontiguousarray(array))
    image.SetSpacing(tuple(float(s) for s in geometry.spacing))
    image.SetOrigin(tuple(float(o) for o in geometry.origin))
    image.SetDirection(tuple(float(d) for d in geometry.direction))
    sitk.WriteImage(image, str(path), useCompression=True)


def check_same_geometry(reference: Geometry, reference_path: Path, other: Geometry,
                        other_path: Path) -> None:
    """Raise InputError naming both files when two images do not share a voxel grid."""
    diff = reference.mismatch(other)
    if diff is not None:
        raise InputError(f"{other_path} does not share the voxel grid of {reference_path}: {diff}; "
                         f"resample it onto the CT grid (e.g. SimpleITK.Resample with the CT as "
                         f"reference, nearest neighbour for masks)")
