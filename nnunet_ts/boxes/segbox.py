"""Segbox: the weak (box) form of a tumour mask, as a binary image.

All arrays are in SimpleITK's numpy axis order ``(z, y, x)``: index 0 runs over axial slices.
Rectangles are given in voxel indices, 0-based and inclusive on both ends.

Three forms (see ``docs/method.md`` "Segbox"):

* ``per_lesion`` (default): in every axial slice, the tightest rectangle around each lesion
  (3D connected component) separately; the segbox is the union of these rectangles. With several
  lesions in one slice this is tighter than the paper's form.
* ``per_slice``: the paper's form, one rectangle around *all* foreground of a slice.
* ``box3d``: one axis-aligned 3D box per lesion (the paper's future-work idea: fewer clicks,
  weaker guidance).
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import cc3d
import numpy as np
from scipy import ndimage

SegboxMode = Literal["per_lesion", "per_slice", "box3d"]
SEGBOX_MODES: tuple[str, ...] = ("per_lesion", "per_slice", "box3d")


@dataclass(frozen=True)
class SliceRectangle:
    """One box drawn in one axial slice.

    Attributes:
        z: slice index.
        y_min, y_max, x_min, x_max: inclusive 0-based voxel bounds (row = y, column = x).
        lesion: 1-based lesion id the box belongs to, 0 when unknown (e.g. a per-slice box).
    """

    z: int
    y_min: int
    y_max: int
    x_min: int
    x_max: int
    lesion: int = 0

    def __post_init__(self) -> None:
        if self.y_min > self.y_max or self.x_min > self.x_max:
            raise ValueError(f"empty rectangle {self}: need y_min <= y_max and x_min <= x_max")
        if min(self.z, self.y_min, self.x_min) < 0:
            raise ValueError(f"negative index in rectangle {self}")

    @classmethod
    def from_voc(cls, z: int, xmin: int, ymin: int, xmax: int, ymax: int,
                 one_based: bool = True, lesion: int = 0) -> SliceRectangle:
        """A PASCAL-VOC pixel box (as Lung-PET-CT-Dx XML files give them: 1-based, inclusive)."""
        off = 1 if one_based else 0
        return cls(z=int(z), y_min=int(ymin) - off, y_max=int(ymax) - off,
                   x_min=int(xmin) - off, x_max=int(xmax) - off, lesion=lesion)


def label_lesions(mask: np.ndarray, connectivity: int = 26) -> tuple[np.ndarray, int]:
    """3D connected components of a binary mask: (labels uint32 (z, y, x), number of lesions)."""
    # uint8, not bool: cc3d 4.1 under-allocates its label table for some thin bool inputs (two
    # voxels of a (1, 3, 1) crop) and fails with "maximum length exception".
    labels, n = cc3d.connected_components((np.asarray(mask) > 0).astype(np.uint8),
                                          connectivity=connectivity, return_N=True)
    return labels, int(n)


def occupied_bounds(mask: np.ndarray) -> tuple[slice, ...] | None:
    """The smallest box (slices per axis) holding every nonzero voxel of ``mask``; None when there is none.

    Three projections instead of listing the voxels: cheap on a whole CT grid that holds a few boxes."""
    mask = np.asarray(mask)
    if not mask.any():
        return None
    bounds = []
    for axis in range(mask.ndim):
        hit = mask.any(axis=tuple(a for a in range(mask.ndim) if a != axis))
        bounds.append(slice(int(np.argmax(hit)), len(hit) - int(np.argmax(hit[::-1]))))
    return tuple(bounds)


def _check_mask(mask: np.ndarray) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.ndim != 3:
        raise ValueError(f"mask must be 3D (z, y, x), got shape {mask.shape}")
    return mask > 0


def slice_rectangles(mask: np.ndarray, mode: Literal["per_lesion", "per_slice"] = "per_lesion",
                     connectivity: int = 26) -> list[SliceRectangle]:
    """The per-slice rectangles a reader would draw around a mask.

    Args:
        mask: binary tumour mask, shape (z, y, x).
        mode: ``per_lesion`` (a rectangle per 3D lesion per slice) or ``per_slice`` (one per slice).
        connectivity: 6, 18 or 26; how voxels join into lesions for ``per_lesion``.

    Returns:
        Rectangles sorted by (z, lesion).
    """
    fg = _check_mask(mask)
    if mode == "per_slice":
        labels, objects = fg.astype(np.uint8), ndimage.find_objects(fg.astype(np.uint8))
    elif mode == "per_lesion":
        labels, _ = label_lesions(fg, connectivity)
        objects = ndimage.find_objects(labels)
    else:
        raise ValueError(f"mode must be 'per_lesion' or 'per_slice', got {mode!r}")
    rects: list[SliceRectangle] = []
    for index, bbox in enumerate(objects, start=1):
        if bbox is None:
            continue
        sub = labels[bbox] == index
        rows = sub.any(axis=2)  # (z, y)
        cols = sub.any(axis=1)  # (z, x)
        lesion = index if mode == "per_lesion" else 0
        for dz in np.flatnonzero(rows.any(axis=1)):
            ys, xs = np.flatnonzero(rows[dz]), np.flatnonzero(cols[dz])
            rects.append(SliceRectangle(
                z=bbox[0].start + int(dz),
                y_min=bbox[1].start + int(ys[0]), y_max=bbox[1].start + int(ys[-1]),
                x_min=bbox[2].start + int(xs[0]), x_max=bbox[2].start + int(xs[-1]),
                lesion=lesion))
    rects.sort(key=lambda r: (r.z, r.lesion, r.y_min, r.x_min))
    return rects


def rectangles_to_segbox(rects: Iterable[SliceRectangle], shape: Sequence[int]) -> np.ndarray:
    """Fill rectangles into a binary image of ``shape`` (z, y, x); uint8 with values {0, 1}.

    Raises:
        ValueError: a rectangle lies (partly) outside the image.
    """
    shape = tuple(int(s) for s in shape)
    segbox = np.zeros(shape, dtype=np.uint8)
    for r in rects:
        if r.z >= shape[0] or r.y_max >= shape[1] or r.x_max >= shape[2]:
            raise ValueError(f"rectangle {r} lies outside an image of shape {shape}")
        segbox[r.z, r.y_min:r.y_max + 1, r.x_min:r.x_max + 1] = 1
    return segbox


def lesion_boxes_3d(mask: np.ndarray, connectivity: int = 26) -> np.ndarray:
    """One filled axis-aligned 3D box per lesion, union over lesions; uint8 (z, y, x)."""
    labels, _ = label_lesions(_check_mask(mask), connectivity)
    segbox = np.zeros(labels.shape, dtype=np.uint8)
    for bbox in ndimage.find_objects(labels):
        if bbox is not None:
            segbox[bbox] = 1
    return segbox


def segbox_from_mask(mask: np.ndarray, mode: SegboxMode = "per_lesion",
                     connectivity: int = 26) -> np.ndarray:
    """The segbox image of a mask in the given form; uint8 (z, y, x) with values {0, 1}."""
    if mode == "box3d":
        return lesion_boxes_3d(mask, connectivity)
    if mode not in SEGBOX_MODES:
        raise ValueError(f"segbox mode must be one of {SEGBOX_MODES}, got {mode!r}")
    return rectangles_to_segbox(slice_rectangles(mask, mode, connectivity), np.shape(mask))


def segbox_from_rectangles(rects: Sequence[SliceRectangle], shape: Sequence[int],
                           mode: SegboxMode = "per_lesion") -> np.ndarray:
    """The segbox image of drawn rectangles (e.g. Lung-PET-CT-Dx boxes) in the given form.

    ``per_lesion`` fills the rectangles as drawn; ``per_slice`` first merges all rectangles of a
    slice into the one rectangle enclosing them (the paper's form); ``box3d`` takes the 3D bounding
    box of each connected blob of filled rectangles.
    """
    if mode == "per_lesion":
        return rectangles_to_segbox(rects, shape)
    if mode == "per_slice":
        merged: dict[int, SliceRectangle] = {}
        for r in rects:
            m = merged.get(r.z, r)
            merged[r.z] = SliceRectangle(r.z, min(m.y_min, r.y_min), max(m.y_max, r.y_max),
                                         min(m.x_min, r.x_min), max(m.x_max, r.x_max))
        return rectangles_to_segbox(merged.values(), shape)
    if mode == "box3d":
        return lesion_boxes_3d(rectangles_to_segbox(rects, shape))
    raise ValueError(f"segbox mode must be one of {SEGBOX_MODES}, got {mode!r}")
