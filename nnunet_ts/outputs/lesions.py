"""Per-lesion measurements of a tumour mask, and the lesion table written beside each prediction.

A lesion is one 3D connected component of the mask (26-connected, ``cc3d``). Sizes treat each voxel
as the box it covers (see :mod:`nnunet_ts.outputs.geometry`): a 10 x 20 x 30 mm block of voxels
measures 10 x 20 x 30 mm. Values are rounded to what a voxel grid supports: volumes to 0.001 ml,
lengths and coordinates to 0.01 mm, HU to 0.1, probabilities to 0.0001.

Arrays are (z, y, x) as ``SimpleITK.GetArrayFromImage``; ``reference`` is the CT as a SimpleITK
image in HU. Patient coordinates are DICOM/SimpleITK LPS in mm: x grows towards the patient's left.
"""
from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from nnunet_ts.errors import InputError
from nnunet_ts.io.atomic import write_text_atomic
from nnunet_ts.outputs.geometry import axial_diameters, longest_diameter

BODY_HU = -500.0        # voxels above this are body (or table): their median x is the body midline
BOTH_SIDES_FRACTION = 0.1  # a lesion is on "both" sides when each side holds >= 10 % of it
RIGHT_LUNG, LEFT_LUNG = 1, 2  # labels of nnunet_ts.datasets.lung_crop (lungmask R231)

UNITS = {
    "label": "1.. by decreasing volume",
    "volume_ml": "ml",
    "axial_longest_mm": "mm",
    "axial_perpendicular_mm": "mm",
    "axial_slice": "z index (0-based)",
    "longest_3d_mm": "mm",
    "centroid_mm": "mm, patient LPS (x, y, z)",
    "slice_range": "z index (0-based), first and last inclusive",
    "side": "patient side",
    "mean_hu": "HU",
    "mean_probability": "0-1",
    "max_probability": "0-1",
}


@dataclass(frozen=True)
class Lesion:
    """One lesion: a 3D connected component (26-connected) of the tumour mask.

    Attributes:
        label: 1.. by decreasing volume (ties: the component met first in (z, y, x) order).
        volume_ml: voxel count times voxel volume, ml.
        axial_longest_mm: longest in-plane diameter on the slice where it is largest (RECIST).
        axial_perpendicular_mm: on that slice, the longest segment inside the lesion perpendicular
            to the longest diameter (the bidimensional WHO short axis).
        axial_slice: z index of that slice; ties go to the larger area, then to the slice nearest
            the centroid.
        longest_3d_mm: largest distance between two points of the lesion in 3D.
        centroid_mm: centre of mass, patient coordinates (x, y, z) LPS mm.
        slice_range: first and last z index holding the lesion (inclusive).
        side: "right", "left", "both" or "unknown" (patient side; see :func:`measure_lesions`).
        mean_hu: mean CT value inside the lesion, HU.
        mean_probability, max_probability: of the tumour probability inside the lesion, or None
            without a probability map.
    """

    label: int
    volume_ml: float
    axial_longest_mm: float
    axial_perpendicular_mm: float
    axial_slice: int
    longest_3d_mm: float
    centroid_mm: tuple[float, float, float]
    slice_range: tuple[int, int]
    side: str
    mean_hu: float
    mean_probability: float | None
    max_probability: float | None


def _check_shape(what: str, array: np.ndarray | None, shape: tuple[int, ...]) -> None:
    if array is not None and tuple(array.shape) != tuple(shape):
        raise InputError(f"{what} has shape (z, y, x) {tuple(array.shape)} but the CT has {tuple(shape)}; "
                         f"pass arrays on the CT's voxel grid")


def _patient_x(index_zyx: np.ndarray, reference) -> np.ndarray:
    """Patient x (mm) of voxel indices given as rows (z, y, x)."""
    direction = np.asarray(reference.GetDirection(), float).reshape(3, 3)
    spacing = np.asarray(reference.GetSpacing(), float)
    xyz = index_zyx[:, ::-1].astype(float) * spacing
    return reference.GetOrigin()[0] + xyz @ direction[0]


def _body_midline(hu: np.ndarray, reference) -> float | None:
    """Median patient x (mm) of the voxels above ``BODY_HU`` (on a grid of about a million voxels), or None."""
    step = max(1, round((hu.size / 1e6) ** (1 / 3)))
    sub = np.argwhere(hu[::step, ::step, ::step] > BODY_HU) * step
    return float(np.median(_patient_x(sub, reference))) if len(sub) else None


def _lung_midline(lungs: np.ndarray, reference) -> float | None:
    """Halfway (patient x, mm) between the centroids of the right and the left lung, or None."""
    centres = []
    for label in (RIGHT_LUNG, LEFT_LUNG):
        inside = lungs == label
        total = int(inside.sum())
        if total == 0:
            return None
        # centroid index from the three marginal sums: no index list of millions of voxels
        index = [float((np.arange(n) * inside.sum(axis=tuple(a for a in range(3) if a != axis))).sum()) / total
                 for axis, n in enumerate(inside.shape)]
        centres.append(float(_patient_x(np.array([index]), reference)[0]))
    return (centres[0] + centres[1]) / 2


def _side_from_counts(right: int, left: int) -> str:
    total = right + left
    if total == 0:
        return "unknown"
    if min(right, left) >= BOTH_SIDES_FRACTION * total:
        return "both"
    return "right" if right > left else "left"


def _side(voxels: np.ndarray, reference, lungs: np.ndarray | None, midline: float | None) -> str:
    if lungs is not None:
        labels = lungs[tuple(voxels.T)]
        right, left = int((labels == RIGHT_LUNG).sum()), int((labels == LEFT_LUNG).sum())
        if right + left:
            return _side_from_counts(right, left)
    if midline is None:
        return "unknown"
    x = _patient_x(voxels, reference)
    return _side_from_counts(int((x < midline).sum()), int((x > midline).sum()))  # LPS: x grows to the left


def _surface(voxels: np.ndarray) -> np.ndarray:
    """The voxels (rows z, y, x) with a face neighbour outside the set: all a diameter depends on."""
    from scipy.ndimage import binary_erosion

    lo = voxels.min(0)
    crop = np.zeros(tuple(voxels.max(0) - lo + 1), bool)
    crop[tuple((voxels - lo).T)] = True
    return np.argwhere(crop & ~binary_erosion(crop, border_value=0)) + lo


def _best_axial_slice(voxels: np.ndarray, surface: np.ndarray, spacing: np.ndarray,
                      centroid_z: float) -> tuple[int, float, float]:
    """(z, longest, perpendicular) of the slice with the longest in-plane diameter."""
    z0 = int(voxels[:, 0].min())
    area = np.bincount(voxels[:, 0] - z0)
    best = None
    for z in np.unique(surface[:, 0]):
        yx = surface[surface[:, 0] == z][:, 1:]
        longest = longest_diameter(yx[:, ::-1] * spacing[:2], spacing[:2])
        key = (round(longest, 6), int(area[z - z0]), -abs(z - centroid_z), -z)
        if best is None or key > best[0]:
            best = (key, int(z))
    z = best[1]
    yx = voxels[voxels[:, 0] == z][:, 1:]
    lo = yx.min(0)
    crop = np.zeros(tuple(yx.max(0) - lo + 1), bool)
    crop[tuple((yx - lo).T)] = True
    longest, perpendicular = axial_diameters(crop, (spacing[0], spacing[1]))
    return z, longest, perpendicular


def measure_lesions(mask: np.ndarray, reference, probability: np.ndarray | None = None,
                    lungs: np.ndarray | None = None) -> list[Lesion]:
    """Measure every lesion (3D connected component, 26-connected) of a tumour mask.

    Side: with ``lungs`` (label map, 1 right lung, 2 left lung, as
    :mod:`nnunet_ts.datasets.lung_crop` makes it), by the lesion's voxels inside each lung; a
    lesion touching no lung is placed by its voxels' patient x against the midline halfway between
    the two lungs' centroids. Without ``lungs`` (or with only one lung found), against the body
    midline: the median patient x of the voxels above -500 HU. LPS: larger x is the patient's
    left. "both" when each side holds at least 10 % of the lesion's voxels; "unknown" when there is
    no midline (no lungs and no voxel above -500 HU).

    Args:
        mask: (z, y, x), nonzero = tumour.
        reference: the CT (SimpleITK image, HU) the mask is on: spacing, origin, direction, HU.
        probability: optional (z, y, x) tumour probability in [0, 1].
        lungs: optional (z, y, x) lung labels.

    Returns:
        Lesions labelled 1.. by decreasing volume; empty for an empty mask.

    Raises:
        InputError: an array's shape differs from the CT's.
    """
    import cc3d
    import SimpleITK as sitk

    hu = sitk.GetArrayViewFromImage(reference)
    mask = np.asarray(mask)
    for what, array in (("tumour mask", mask), ("probability map", probability), ("lung mask", lungs)):
        _check_shape(what, array, hu.shape)
    if not mask.any():
        return []
    components = cc3d.connected_components(mask != 0, connectivity=26)
    spacing = np.asarray(reference.GetSpacing(), float)  # x, y, z
    voxel_ml = float(np.prod(spacing)) / 1000.0
    lung_mid = _lung_midline(lungs, reference) if lungs is not None else None
    midline = lung_mid if lung_mid is not None else _body_midline(hu, reference)
    lesions = []
    # largest first; sorted() is stable, so equal volumes keep the (z, y, x) order of their first voxel
    for label, voxels in enumerate(sorted(_components(components), key=len, reverse=True), start=1):
        centre = voxels.mean(0)  # voxels: (n, 3) z, y, x
        surface = _surface(voxels)
        z, longest, perpendicular = _best_axial_slice(voxels, surface, spacing, float(centre[0]))
        values = None if probability is None else np.asarray(probability)[tuple(voxels.T)]
        lesions.append(Lesion(
            label=label, volume_ml=round(len(voxels) * voxel_ml, 3),
            axial_longest_mm=round(longest, 2), axial_perpendicular_mm=round(perpendicular, 2),
            axial_slice=z,
            longest_3d_mm=round(longest_diameter(surface[:, ::-1] * spacing, spacing), 2),
            centroid_mm=tuple(round(float(c), 2) for c in
                              reference.TransformContinuousIndexToPhysicalPoint(tuple(float(c) for c in centre[::-1]))),
            slice_range=(int(voxels[:, 0].min()), int(voxels[:, 0].max())),
            side=_side(voxels, reference, lungs, midline),
            mean_hu=round(float(hu[tuple(voxels.T)].mean()), 1),
            mean_probability=None if values is None else round(float(values.mean()), 4),
            max_probability=None if values is None else round(float(values.max()), 4)))
    return lesions


def _components(labels: np.ndarray):
    """Voxel indices (n, 3) (z, y, x) of each component, in order of each component's first voxel
    in (z, y, x) raster order."""
    import cc3d

    boxes = cc3d.statistics(labels)["bounding_boxes"]
    found = []
    for label, box in enumerate(boxes):
        if label == 0 or box is None:
            continue
        offset = np.array([s.start for s in box])
        voxels = np.argwhere(labels[box] == label) + offset
        if len(voxels):
            found.append(voxels)
    found.sort(key=lambda v: tuple(v[0]))
    return found


# ----------------------------------------------------------------------------- table files

CSV_COLUMNS = ("label", "volume_ml", "axial_longest_mm", "axial_perpendicular_mm", "axial_slice", "longest_3d_mm",
               "centroid_x_mm", "centroid_y_mm", "centroid_z_mm", "first_slice", "last_slice", "side", "mean_hu",
               "mean_probability", "max_probability")


def _row(lesion: Lesion) -> dict:
    d = asdict(lesion)
    x, y, z = d.pop("centroid_mm")
    first, last = d.pop("slice_range")
    d.update(centroid_x_mm=x, centroid_y_mm=y, centroid_z_mm=z, first_slice=first, last_slice=last)
    return {k: d[k] for k in CSV_COLUMNS}


def write_lesion_table(lesions: Sequence[Lesion], stem: str | Path) -> tuple[Path, Path]:
    """Write ``<stem>.csv`` (one row per lesion, :data:`CSV_COLUMNS`; empty cells for missing
    probabilities) and ``<stem>.json`` (``{"units": ..., "coordinates": ..., "lesions": [...]}``),
    each whole or not at all. Returns (csv path, json path)."""
    stem = Path(stem)
    csv_path, json_path = stem.with_name(stem.name + ".csv"), stem.with_name(stem.name + ".json")
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for lesion in lesions:
        writer.writerow({k: "" if v is None else v for k, v in _row(lesion).items()})
    write_text_atomic(csv_path, text.getvalue())
    doc = {"units": UNITS,
           "coordinates": "patient coordinates in mm, DICOM LPS (x to the patient's left, y posterior, z head)",
           "lesion_definition": "3D connected component of the mask, 26-connected",
           "lesions": [asdict(lesion) for lesion in lesions]}
    write_text_atomic(json_path, json.dumps(doc, indent=2) + "\n")
    return csv_path, json_path


def read_lesion_table(path: str | Path) -> list[Lesion]:
    """Lesions from a table written by :func:`write_lesion_table` (``.csv`` or ``.json``).

    Raises:
        InputError: missing file, or not a lesion table.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"lesion table {path} does not exist")
    try:
        if path.suffix.lower() == ".json":
            rows = json.loads(path.read_text(encoding="utf-8"))["lesions"]
            return [Lesion(**{**r, "centroid_mm": tuple(r["centroid_mm"]), "slice_range": tuple(r["slice_range"])})
                    for r in rows]
        with path.open(newline="", encoding="utf-8") as f:
            return [_from_row(r) for r in csv.DictReader(f)]
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{path} is not a lesion table written by nnunet_ts ({exc})") from None


def _from_row(r: dict) -> Lesion:
    def opt(v: str) -> float | None:
        return None if v == "" else float(v)

    return Lesion(label=int(r["label"]), volume_ml=float(r["volume_ml"]),
                  axial_longest_mm=float(r["axial_longest_mm"]),
                  axial_perpendicular_mm=float(r["axial_perpendicular_mm"]), axial_slice=int(r["axial_slice"]),
                  longest_3d_mm=float(r["longest_3d_mm"]),
                  centroid_mm=(float(r["centroid_x_mm"]), float(r["centroid_y_mm"]), float(r["centroid_z_mm"])),
                  slice_range=(int(r["first_slice"]), int(r["last_slice"])), side=r["side"],
                  mean_hu=float(r["mean_hu"]), mean_probability=opt(r["mean_probability"]),
                  max_probability=opt(r["max_probability"]))


_PRINTED = (("#", "label", "{:d}"), ("volume ml", "volume_ml", "{:.2f}"),
            ("axial long mm", "axial_longest_mm", "{:.1f}"), ("axial perp mm", "axial_perpendicular_mm", "{:.1f}"),
            ("slice", "axial_slice", "{:d}"), ("3D long mm", "longest_3d_mm", "{:.1f}"), ("side", "side", "{}"),
            ("mean HU", "mean_hu", "{:.0f}"), ("mean p", "mean_probability", "{:.2f}"))


def format_lesion_table(lesions: Sequence[Lesion]) -> str:
    """The lesion table as aligned text for a terminal ("no tumour found" when empty)."""
    if not lesions:
        return "no tumour found"
    rows = [[h for h, _, _ in _PRINTED]]
    for lesion in lesions:
        rows.append(["-" if getattr(lesion, f) is None else fmt.format(getattr(lesion, f)) for _, f, fmt in _PRINTED])
    widths = [max(len(r[i]) for r in rows) for i in range(len(_PRINTED))]
    lines = ["  ".join(c.rjust(w) if i != 6 else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip()
             for r in rows]
    total = sum(lesion.volume_ml for lesion in lesions)
    lines.append(f"{len(lesions)} lesion(s), {total:.2f} ml in total")
    return "\n".join(lines)


__all__ = ["Lesion", "measure_lesions", "write_lesion_table", "read_lesion_table", "format_lesion_table",
           "CSV_COLUMNS", "UNITS"]
