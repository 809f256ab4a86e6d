"""Reading and writing per-slice rectangles as JSON (``<case>_boxes.json``).

Format (version 1)::

    {"format": "nnunet_ts.boxes", "version": 1,
     "axis_order": "zyx", "index_base": 0, "inclusive": true,
     "shape_zyx": [Z, Y, X],
     "rectangles": [{"z": 12, "y_min": 40, "y_max": 60, "x_min": 30, "x_max": 50, "lesion": 1}, ...]}

Indices are voxel indices of the CT the file belongs to, in SimpleITK's numpy order (z, y, x).
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from nnunet_ts.boxes.segbox import SliceRectangle
from nnunet_ts.errors import InputError

FORMAT = "nnunet_ts.boxes"
_FIELDS = ("z", "y_min", "y_max", "x_min", "x_max")


def save_rectangles(path: str | Path, rects: Sequence[SliceRectangle], shape_zyx: Sequence[int]) -> None:
    doc = {
        "format": FORMAT, "version": 1, "axis_order": "zyx", "index_base": 0, "inclusive": True,
        "shape_zyx": [int(s) for s in shape_zyx],
        "rectangles": [{f: int(getattr(r, f)) for f in (*_FIELDS, "lesion")} for r in rects],
    }
    Path(path).write_text(json.dumps(doc, indent=1))


def load_rectangles(path: str | Path) -> tuple[list[SliceRectangle], tuple[int, int, int]]:
    """Read a boxes file: (rectangles, shape (z, y, x) of the CT they were drawn on).

    Raises:
        InputError: the file is missing, not JSON, not this format, or holds an invalid rectangle.
    """
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"boxes file {path} does not exist; check the 'boxes' column of the manifest") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"boxes file {path} is not valid JSON ({exc}); rewrite it with "
                         f"nnunet_ts.io.boxes_file.save_rectangles") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or doc.get("version") != 1:
        raise InputError(f"boxes file {path} is not a '{FORMAT}' version 1 file "
                         f"(see nnunet_ts/io/boxes_file.py for the format)")
    try:
        shape = tuple(int(s) for s in doc["shape_zyx"])
        rects = [SliceRectangle(**{f: int(r[f]) for f in _FIELDS}, lesion=int(r.get("lesion", 0)))
                 for r in doc["rectangles"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"boxes file {path}: invalid entry ({exc}); every rectangle needs integer "
                         f"{', '.join(_FIELDS)} with min <= max") from None
    if len(shape) != 3:
        raise InputError(f"boxes file {path}: shape_zyx must have 3 entries, got {list(shape)}")
    for r in rects:
        if r.z >= shape[0] or r.y_max >= shape[1] or r.x_max >= shape[2]:
            raise InputError(f"boxes file {path}: rectangle {r} lies outside the image shape {shape}")
    return rects, shape
