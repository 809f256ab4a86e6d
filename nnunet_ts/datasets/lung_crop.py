"""Lung cropping: one crop around each lung, applied identically to CT, masks, soft targets and
boxes, with what it takes to paste predictions back exactly (the paper's student input).

Lung masks come from :mod:`nnunet_ts.datasets.lung_mask` (lungmask R231 when its weights are on
disk, else a classical method, announced); the method used is recorded in every :class:`CropPlan`.

Arrays are (z, y, x). A crop is a half-open index box ``[start, stop)`` per axis of the original
grid; the cropped grid keeps spacing and direction and moves the origin to the crop's first voxel,
so every voxel keeps its physical position (``sitk.RegionOfInterest`` does the same).
"""
from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from nnunet_ts.boxes.segbox import SliceRectangle
from nnunet_ts.datasets.lung_mask import (
    LEFT,
    R231_FILE,
    RIGHT,
    SIDES,
    LungMask,
    LungMaskFallbackWarning,
    classical_lung_mask,
    compute_lung_mask,
    lungmask_weights,
)
from nnunet_ts.io.images import Geometry

# The lung-mask names this module has always offered (callers import them from here).
__all__ = ["LEFT", "R231_FILE", "RIGHT", "SIDES", "CropPlan", "LungCrop", "LungMask", "LungMaskFallbackWarning",
           "classical_lung_mask", "compute_lung_mask", "crop_array", "crop_geometry", "crop_rectangles",
           "crop_records", "lungmask_weights", "paste_back", "plan_crops", "plan_for_image"]

@dataclass(frozen=True)
class LungCrop:
    """One crop: ``side`` (``right``, ``left`` or ``whole``) and the half-open box (z, y, x)."""

    side: str
    start_zyx: tuple[int, int, int]
    stop_zyx: tuple[int, int, int]

    @property
    def slices(self) -> tuple[slice, slice, slice]:
        return tuple(slice(a, b) for a, b in zip(self.start_zyx, self.stop_zyx))

    @property
    def shape_zyx(self) -> tuple[int, int, int]:
        return tuple(b - a for a, b in zip(self.start_zyx, self.stop_zyx))


@dataclass(frozen=True)
class CropPlan:
    """Everything needed to crop a scan and paste crop predictions back.

    Attributes:
        geometry: the original grid.
        crops: right lung first, then left (``whole``: no lung found, the scan is not cropped).
        method, weights, warning: how the lung mask was made (see :class:`LungMask`).
    """

    geometry: Geometry
    crops: tuple[LungCrop, ...]
    margin_mm: float
    method: str
    weights: str | None = None
    warning: str | None = None

    def to_json(self) -> dict:
        return {"format": "nnunet_ts.lung_crop", "version": 1, **asdict(self)}

    @classmethod
    def from_json(cls, doc: dict) -> CropPlan:
        g = doc["geometry"]
        geometry = Geometry(tuple(g["shape_zyx"]), tuple(g["spacing"]), tuple(g["origin"]), tuple(g["direction"]))
        crops = tuple(LungCrop(c["side"], tuple(c["start_zyx"]), tuple(c["stop_zyx"])) for c in doc["crops"])
        return cls(geometry, crops, doc["margin_mm"], doc["method"], doc.get("weights"), doc.get("warning"))

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_json(), indent=1))

    @classmethod
    def load(cls, path: str | Path) -> CropPlan:
        return cls.from_json(json.loads(Path(path).read_text()))


def plan_crops(lungs: LungMask, geometry: Geometry, margin_mm: float = 10.0) -> CropPlan:
    """A crop per lung: its bounding box grown by ``margin_mm`` on every side, clipped to the image."""
    margin = [int(np.ceil(margin_mm / s)) for s in geometry.spacing_zyx]
    crops = []
    for value, side in SIDES.items():
        where = np.nonzero(lungs.labels == value)
        if len(where[0]) == 0:
            continue
        start = tuple(max(int(w.min()) - m, 0) for w, m in zip(where, margin))
        stop = tuple(min(int(w.max()) + 1 + m, n) for w, m, n in zip(where, margin, geometry.shape_zyx))
        crops.append(LungCrop(side, start, stop))
    warning = lungs.warning
    if not crops:
        crops = [LungCrop("whole", (0, 0, 0), tuple(geometry.shape_zyx))]
        warning = "; ".join(filter(None, [warning, "no lung found: the whole scan is used as one crop"]))
        print(f"WARNING: {warning}", file=sys.stderr)
    return CropPlan(geometry, tuple(crops), float(margin_mm), lungs.method, lungs.weights, warning)


def crop_array(array: np.ndarray, crop: LungCrop) -> np.ndarray:
    """The crop of a (..., z, y, x) array (CT, mask, soft target, channels first)."""
    return np.ascontiguousarray(array[(Ellipsis, *crop.slices)])


def crop_geometry(geometry: Geometry, crop: LungCrop) -> Geometry:
    """The grid of a crop: same spacing and direction, origin at the crop's first voxel."""
    d = np.asarray(geometry.direction, float).reshape(3, 3)
    start_xyz = np.asarray(crop.start_zyx[::-1], float)
    origin = np.asarray(geometry.origin) + d @ (np.asarray(geometry.spacing) * start_xyz)
    return Geometry(crop.shape_zyx, geometry.spacing, tuple(float(o) for o in origin), geometry.direction)


def crop_rectangles(rects: Sequence[SliceRectangle], crop: LungCrop) -> list[SliceRectangle]:
    """Rectangles in the crop's indices: clipped to the crop, those outside it dropped."""
    (z0, y0, x0), (z1, y1, x1) = crop.start_zyx, crop.stop_zyx
    out = []
    for r in rects:
        if not (z0 <= r.z < z1) or r.y_max < y0 or r.y_min >= y1 or r.x_max < x0 or r.x_min >= x1:
            continue
        out.append(SliceRectangle(r.z - z0, max(r.y_min, y0) - y0, min(r.y_max, y1 - 1) - y0,
                                  max(r.x_min, x0) - x0, min(r.x_max, x1 - 1) - x0, r.lesion))
    return out


def paste_back(crops: Sequence[np.ndarray], plan: CropPlan, fill: float = 0) -> np.ndarray:
    """Crop arrays (..., z, y, x) back onto the original grid; where crops overlap (the mediastinum
    with a margin) the maximum wins, outside all crops ``fill``."""
    if len(crops) != len(plan.crops):
        raise ValueError(f"{len(crops)} arrays for {len(plan.crops)} crops")
    lead = crops[0].shape[:-3]
    out = np.full((*lead, *plan.geometry.shape_zyx), fill, dtype=np.result_type(*crops, np.asarray(fill)))
    seen = np.zeros(plan.geometry.shape_zyx, dtype=bool)
    for array, crop in zip(crops, plan.crops):
        if tuple(array.shape[-3:]) != crop.shape_zyx:
            raise ValueError(f"array of shape {array.shape} does not fit the {crop.side} crop {crop.shape_zyx}")
        region = (Ellipsis, *crop.slices)
        overlap = seen[crop.slices]
        out[region] = np.where(overlap, np.maximum(out[region], array), array)
        seen[crop.slices] = True
    return out


def plan_for_image(image, weights: str | Path | None = None, margin_mm: float = 10.0,
                   force_cpu: bool = True, announce: bool = True) -> CropPlan:
    """Lung mask + crop plan of a SimpleITK CT image."""
    from nnunet_ts.io.images import geometry_of

    lungs = compute_lung_mask(image, weights, force_cpu, announce=announce)
    return plan_crops(lungs, geometry_of(image), margin_mm)


def crop_records(records, out_dir: str | Path, weights: str | Path | None = None, margin_mm: float = 10.0,
                 progress: bool = True) -> list:
    """Crop every case of a manifest (CT, mask, boxes) around each lung into ``out_dir``.

    Returns manifest records of the crops (``<case>_right``, ``<case>_left``; same patient and
    subset); ``<case>_crop.json`` holds each case's :class:`CropPlan` and ``lung_crops.json`` the
    lung-mask method of every case (and the fallback warning, if any).
    """
    import SimpleITK as sitk
    from tqdm import tqdm

    from nnunet_ts.io.boxes_file import load_rectangles, save_rectangles
    from nnunet_ts.io.images import read_image, write_image
    from nnunet_ts.io.manifest import CaseRecord

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    cropped, summary = [], {}
    for record in tqdm(records, desc="lung crops", unit="case", disable=not progress, leave=False):
        image = sitk.ReadImage(str(record.ct))
        plan = plan_for_image(image, weights, margin_mm)  # a fallback is announced once per process
        plan.save(out_dir / f"{record.case_id}_crop.json")
        summary[record.case_id] = {"method": plan.method, "warning": plan.warning,
                                   "crops": [asdict(c) for c in plan.crops]}
        ct = sitk.GetArrayViewFromImage(image)
        mask = read_image(record.mask, "mask")[0] if record.mask else None
        rects = load_rectangles(record.boxes)[0] if record.boxes else None
        for crop in plan.crops:
            case_id = f"{record.case_id}_{crop.side}"
            geometry = crop_geometry(plan.geometry, crop)
            paths = [out_dir / f"{case_id}_ct.nii.gz", None, None]
            write_image(paths[0], crop_array(ct, crop), geometry)
            if mask is not None:
                paths[1] = out_dir / f"{case_id}_mask.nii.gz"
                write_image(paths[1], crop_array(mask, crop), geometry)
            if rects is not None:
                paths[2] = out_dir / f"{case_id}_boxes.json"
                save_rectangles(paths[2], crop_rectangles(rects, crop), crop.shape_zyx)
            cropped.append(CaseRecord(case_id, record.patient_id, record.subset, *paths))
    methods = sorted({v["method"] for v in summary.values()})
    (out_dir / "lung_crops.json").write_text(json.dumps(
        {"methods": methods, "fallback_used": "classical" in methods, "margin_mm": margin_mm,
         "cases": summary}, indent=1))
    return cropped
