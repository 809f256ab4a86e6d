"""Boxes a reader drew, turned into the segbox a box-guided teacher reads (``predict --boxes``).

Three box files are read:

* our per-slice rectangles (``nnunet_ts.boxes`` JSON, ``nnunet_ts/io/boxes_file.py``): voxel indices;
* PASCAL-VOC XML as Lung-PET-CT-Dx ships them: one file per annotated slice, named by the slice's
  SOPInstanceUID (a single file, or a folder of them); the input must be that DICOM series;
* 3D boxes in patient coordinates (``nnunet_ts.box3d_mm`` JSON)::

      {"format": "nnunet_ts.box3d_mm", "version": 1, "coordinates": "LPS",
       "boxes": [{"min": [x, y, z], "max": [x, y, z], "lesion": 1}]}

  mm in DICOM's patient system (LPS, as ImagePositionPatient and SimpleITK's physical points; from
  RAS viewers negate x and y). A voxel belongs to a box when its centre lies inside (bounds
  included), so an oblique CT gets the box as drawn, not its voxel-axis-aligned hull.

Rectangles suit a teacher trained on per-slice boxes (``per_lesion`` or ``per_slice`` segbox), 3D
boxes one trained on ``box3d``; anything else is refused: a teacher told "tumour fills this slab"
on every slice segments differently from one that learnt tight per-slice boxes.

Arrays are (z, y, x) as SimpleITK gives them.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nnunet_ts.boxes.segbox import SliceRectangle
from nnunet_ts.errors import InputError

BOX3D_FORMAT = "nnunet_ts.box3d_mm"
RECTANGLE_FORMS = ("per_lesion", "per_slice")


@dataclass(frozen=True)
class BoxPrompt:
    """Boxes for one CT: per-slice ``rectangles`` (voxel indices) or 3D ``boxes_mm`` ((min xyz, max xyz))."""

    source: Path
    rectangles: tuple[SliceRectangle, ...] = ()
    boxes_mm: tuple[tuple[tuple[float, float, float], tuple[float, float, float]], ...] = ()
    notes: tuple[str, ...] = field(default=())

    @property
    def form(self) -> str:
        return "box3d" if self.boxes_mm else "rectangles"


def read_box_prompt(path: str | Path, shape_zyx: Sequence[int], sop_uids: Sequence[str] | None = None) -> BoxPrompt:
    """Read a box file (or a folder of VOC XML files) for a CT of ``shape_zyx``.

    Args:
        sop_uids: SOPInstanceUID of each slice (z order) when the CT is a DICOM series; VOC files
            are matched to slices through them.

    Raises:
        InputError: missing or unreadable file, unknown format, boxes outside the CT, VOC boxes for a
            CT that is not a DICOM series or whose slices none of the files name.
    """
    from nnunet_ts.dataset_conversion.lungdx import index_annotations, series_rectangles
    from nnunet_ts.io.boxes_file import FORMAT as RECT_FORMAT
    from nnunet_ts.io.boxes_file import load_rectangles

    path = Path(path)
    shape = tuple(int(s) for s in shape_zyx)
    if path.is_dir() or path.suffix.lower() == ".xml":
        if not path.exists():
            raise InputError(f"boxes file {path} does not exist")
        if sop_uids is None:
            raise InputError(f"boxes {path} are PASCAL-VOC XML, matched to slices by the SOPInstanceUID in "
                             f"their file names; the CT must then be the DICOM series itself, not an image file")
        annotations = index_annotations(path) if path.is_dir() else {path.stem: path}
        if not annotations:
            raise InputError(f"boxes folder {path} holds no .xml file; give a boxes JSON or the folder of "
                             f"<SOPInstanceUID>.xml files")
        rects, notes = series_rectangles(list(sop_uids), shape, annotations)
        if not rects:
            raise InputError(f"no box of {path} lies on a slice of this series (files are matched by the "
                             f"SOPInstanceUID in their names); check it is this series' annotation")
        return BoxPrompt(path, rectangles=tuple(rects), notes=tuple(notes))
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"boxes file {path} does not exist") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"boxes file {path} is neither JSON nor VOC XML ({exc})") from None
    kind = doc.get("format") if isinstance(doc, dict) else None
    if kind == RECT_FORMAT:
        rects, drawn_on = load_rectangles(path)
        if tuple(drawn_on) != shape:
            raise InputError(f"boxes file {path} was drawn on a CT of shape (z, y, x) {tuple(drawn_on)}, this CT "
                             f"is {shape}; give the boxes of this scan")
        return BoxPrompt(path, rectangles=tuple(rects))
    if kind == BOX3D_FORMAT:
        return BoxPrompt(path, boxes_mm=_boxes_mm(doc, path))
    raise InputError(f"boxes file {path} has format {kind!r}; expected '{RECT_FORMAT}' (per-slice rectangles) or "
                     f"'{BOX3D_FORMAT}' (3D boxes in mm), see `nnunet_ts predict --help`")


def _boxes_mm(doc: dict, path: Path):
    if doc.get("version") != 1 or str(doc.get("coordinates", "LPS")).upper() != "LPS":
        raise InputError(f"boxes file {path}: need version 1 and coordinates 'LPS' (negate x and y of RAS points)")
    try:
        boxes = tuple((tuple(float(v) for v in b["min"]), tuple(float(v) for v in b["max"])) for b in doc["boxes"])
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"boxes file {path}: every box needs 'min' and 'max' [x, y, z] in mm ({exc})") from None
    for lo, hi in boxes:
        if len(lo) != 3 or len(hi) != 3 or any(a > b for a, b in zip(lo, hi)):
            raise InputError(f"boxes file {path}: box min {list(lo)} max {list(hi)} needs 3 values each and "
                             f"min <= max")
    if not boxes:
        raise InputError(f"boxes file {path} holds no box")
    return boxes


def interpolate_rectangles(rects: Sequence[SliceRectangle]) -> list[SliceRectangle]:
    """The rectangles plus, per lesion, linearly interpolated ones on the slices between drawn ones.

    A reader boxes a lesion on a few slices (its first, its last, some between); each slice in a
    gap gets the rectangle whose bounds interpolate those of the nearest drawn slices above and
    below (rounded to voxels). Rectangles with ``lesion`` 0 count as one lesion.
    """
    by_lesion: dict[int, dict[int, SliceRectangle]] = {}
    for r in rects:
        slices = by_lesion.setdefault(r.lesion, {})
        m = slices.get(r.z, r)
        slices[r.z] = SliceRectangle(r.z, min(m.y_min, r.y_min), max(m.y_max, r.y_max),
                                     min(m.x_min, r.x_min), max(m.x_max, r.x_max), r.lesion)
    out = list(rects)
    for slices in by_lesion.values():
        zs = sorted(slices)
        for z0, z1 in zip(zs, zs[1:]):
            a, b = slices[z0], slices[z1]
            for z in range(z0 + 1, z1):
                t = (z - z0) / (z1 - z0)
                bounds = [int(round((1 - t) * getattr(a, k) + t * getattr(b, k)))
                          for k in ("y_min", "y_max", "x_min", "x_max")]
                out.append(SliceRectangle(z, *bounds, lesion=a.lesion))
    return sorted(out, key=lambda r: (r.z, r.lesion, r.y_min, r.x_min))


def box3d_segbox(boxes_mm, image) -> np.ndarray:
    """uint8 (z, y, x) on ``image``'s grid: 1 where the voxel centre lies in a 3D box (LPS mm).

    Raises:
        InputError: a box holds no voxel centre of the CT.
    """
    size = image.GetSize()
    origin = np.asarray(image.GetOrigin())
    matrix = np.asarray(image.GetDirection()).reshape(3, 3) * np.asarray(image.GetSpacing())[None, :]
    segbox = np.zeros((size[2], size[1], size[0]), np.uint8)
    for lo, hi in boxes_mm:
        corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
        index = np.linalg.solve(matrix, (corners - origin).T).T  # continuous (i, j, k) = (x, y, z) index
        first = np.clip(np.floor(index.min(axis=0)).astype(int), 0, np.asarray(size) - 1)
        last = np.clip(np.ceil(index.max(axis=0)).astype(int), 0, np.asarray(size) - 1)
        i, j, k = (np.arange(a, b + 1) for a, b in zip(first, last))
        grid = np.stack(np.meshgrid(k, j, i, indexing="ij"), axis=-1)[..., ::-1]  # (z, y, x, [i, j, k])
        points = grid @ matrix.T + origin
        inside = np.all((points >= np.asarray(lo) - 1e-6) & (points <= np.asarray(hi) + 1e-6), axis=-1)
        if not inside.any():
            raise InputError(f"3D box min {list(lo)} max {list(hi)} (mm, LPS) holds no voxel of the CT; check "
                             f"the coordinates belong to this scan")
        segbox[k[0]:k[-1] + 1, j[0]:j[-1] + 1, i[0]:i[-1] + 1] |= inside.astype(np.uint8)
    return segbox


def box_file_form(path: str | Path) -> str:
    """``rectangles`` or ``box3d``: the form of a box file, read cheaply (VOC XML: rectangles).

    Raises:
        InputError: missing, or JSON of another format.
    """
    from nnunet_ts.io.boxes_file import FORMAT as RECT_FORMAT

    path = Path(path)
    if not path.exists():
        raise InputError(f"boxes file {path} does not exist")
    if path.is_dir() or path.suffix.lower() == ".xml":
        return "rectangles"
    try:
        kind = json.loads(path.read_text()).get("format")
    except (ValueError, UnicodeDecodeError, AttributeError) as exc:
        raise InputError(f"boxes file {path} is neither JSON nor VOC XML ({exc})") from None
    if kind not in (RECT_FORMAT, BOX3D_FORMAT):
        raise InputError(f"boxes file {path} has format {kind!r}; expected '{RECT_FORMAT}' (per-slice rectangles) "
                         f"or '{BOX3D_FORMAT}' (3D boxes in mm), see `nnunet_ts predict --help`")
    return "box3d" if kind == BOX3D_FORMAT else "rectangles"


def check_form(given: str, teacher_form: str | None, source: str | Path, model: str | Path) -> None:
    """Refuse boxes of a form the teacher was not trained with (``given``: ``rectangles`` or ``box3d``).

    ``teacher_form`` None (not recorded) is taken as ``per_lesion``.

    Raises:
        InputError: per-slice rectangles for a ``box3d`` teacher, or 3D boxes for a per-slice one.
    """
    form = teacher_form or "per_lesion"
    if (form == "box3d") == (given == "box3d"):
        return
    wanted = ("3D boxes in mm (a 'nnunet_ts.box3d_mm' file)" if form == "box3d" else
              "per-slice rectangles (a 'nnunet_ts.boxes' file or VOC XML)")
    held = "3D boxes" if given == "box3d" else "per-slice rectangles"
    raise InputError(f"teacher {model} was trained with {form} segboxes and needs {wanted}; {source} holds "
                     f"{held}: draw the boxes in the teacher's form or use a teacher trained on "
                     f"{'box3d' if given == 'box3d' else 'per-slice'} boxes")


def prompt_segbox(prompt: BoxPrompt, image, teacher_form: str | None, model: str,
                  interpolate: bool = False) -> np.ndarray:
    """The segbox (uint8 (z, y, x), the CT's grid) the teacher reads, in the form it was trained with.

    Raises:
        InputError: the prompt's form (rectangles or 3D boxes) is not the teacher's (:func:`check_form`).
    """
    from nnunet_ts.boxes.segbox import segbox_from_rectangles

    check_form(prompt.form, teacher_form, prompt.source, model)
    if prompt.form == "box3d":
        return box3d_segbox(prompt.boxes_mm, image)
    size = image.GetSize()
    rects = interpolate_rectangles(prompt.rectangles) if interpolate else list(prompt.rectangles)
    return segbox_from_rectangles(rects, (size[2], size[1], size[0]), teacher_form or "per_lesion")
