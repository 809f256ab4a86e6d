"""Lung-PET-CT-Dx (DICOM + PASCAL-VOC boxes) -> cohort + weak dataset.

Layout read (as TCIA's downloader and the annotation archive write it; series are found by UID)::

    Lung-PET-CT-Dx/Lung_Dx-A0001/<study>/<series>/*.dcm
    Annotation/A0001/<SOPInstanceUID>.xml      one file per annotated slice, one <object> per box

Kept: plain CT series (PET, fused PET/CT, secondary captures and localizers are dropped) whose
z-extent (number of slices x slice spacing) lies in [16, 60] cm (the paper's rule) and that have at
least one box. Each XML file is matched to its slice by the SOPInstanceUID in its name; boxes are
PASCAL-VOC pixels (1-based, inclusive; x = column, y = row) and become per-slice rectangles
(``SliceRectangle.from_voc``). All cases are weak: no masks, so only the weak dataset is written.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from nnunet_ts.boxes.segbox import SliceRectangle
from nnunet_ts.dataset_conversion.common import (
    ConversionOptions,
    ConvertedCase,
    Dropped,
    run_conversion,
    safe_id,
    write_case_files,
)
from nnunet_ts.errors import InputError

SOURCE = "lungdx"
Z_EXTENT_CM = (16.0, 60.0)


def read_voc_boxes(path: Path) -> list[tuple[int, int, int, int]]:
    """(xmin, ymin, xmax, ymax) of every object of a PASCAL-VOC XML file (pixels, as written).

    Raises:
        InputError: not XML, or an object without a complete numeric ``bndbox``.
    """
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as exc:
        raise InputError(f"annotation {path} is not valid XML ({exc}); re-download it") from None
    boxes = []
    for obj in root.iter("object"):
        box = obj.find("bndbox")
        try:
            boxes.append(tuple(int(round(float(box.find(k).text))) for k in ("xmin", "ymin", "xmax", "ymax")))
        except (AttributeError, TypeError, ValueError):
            raise InputError(f"annotation {path}: an <object> lacks numeric bndbox xmin/ymin/xmax/ymax; "
                             f"fix or delete the file") from None
    return boxes


def index_annotations(folder: Path) -> dict[str, Path]:
    """SOPInstanceUID -> XML file, for every ``*.xml`` under ``folder``."""
    return {p.stem: p for p in sorted(folder.rglob("*.xml"))} if folder.is_dir() else {}


def series_rectangles(sop_uids: list[str], shape_zyx: tuple[int, int, int],
                      annotations: dict[str, Path]) -> tuple[list[SliceRectangle], list[str]]:
    """Rectangles of a series whose slice ``z`` has SOPInstanceUID ``sop_uids[z]``; plus notes."""
    rects, notes = [], []
    _, rows, cols = shape_zyx
    for z, uid in enumerate(sop_uids):
        path = annotations.get(uid)
        if path is None:
            continue
        for xmin, ymin, xmax, ymax in read_voc_boxes(path):
            # VOC is 1-based and inclusive; clip to the image (some boxes touch or cross its edge)
            cxmin, cymin, cxmax, cymax = max(xmin, 1), max(ymin, 1), min(xmax, cols), min(ymax, rows)
            if cxmin > cxmax or cymin > cymax:
                notes.append(f"{path.name}: box {xmin, ymin, xmax, ymax} outside the {cols}x{rows} image, ignored")
                continue
            if (cxmin, cymin, cxmax, cymax) != (xmin, ymin, xmax, ymax):
                notes.append(f"{path.name}: box {xmin, ymin, xmax, ymax} clipped to the image")
            rects.append(SliceRectangle.from_voc(z, cxmin, cymin, cxmax, cymax))
    return rects, notes


def convert_patient(item, folder: Path, annotations: dict[str, Path],
                    z_extent_cm: tuple[float, float] = Z_EXTENT_CM) -> list:
    """All kept CT scans of one patient, with their boxes, into the cohort folder."""
    from nnunet_ts.io.dicom import ct_exclusion_reason, read_ct, slice_spacing, sorted_slices

    patient, series = item
    results = []
    for s in series:
        reason = ct_exclusion_reason(s)
        if reason is not None:
            results.append(Dropped(s.label(), reason))
            continue
        try:
            extent_cm = len(s.files) * slice_spacing(s) / 10.0
            if not z_extent_cm[0] <= extent_cm <= z_extent_cm[1]:
                raise InputError(f"z-extent {extent_cm:.1f} cm outside [{z_extent_cm[0]:g}, "
                                 f"{z_extent_cm[1]:g}] cm")
            _, sop_uids, _ = sorted_slices(s)
            if not any(uid in annotations for uid in sop_uids):
                raise InputError("no box annotation (XML named by a slice's SOPInstanceUID)")
            image = read_ct(s)
            size = image.GetSize()
            rects, notes = series_rectangles(sop_uids, (size[2], size[1], size[0]), annotations)
            if not rects:
                raise InputError("its annotations hold no box inside the image")
        except InputError as exc:
            results.append(Dropped(s.label(), str(exc)))
            continue
        n_done = sum(isinstance(r, ConvertedCase) for r in results)
        case_id = f"lungdx_{safe_id(patient)}_{n_done + 1}"
        notes.insert(0, f"{len(rects)} box(es) on {len({r.z for r in rects})} slice(s)")
        results.append(write_case_files(folder, case_id, safe_id(patient), image, None, rects,
                                        source=s.label(), notes=notes))
    return results


def convert_lung_pet_ct_dx(src: str | Path, raw: str | Path, options: ConversionOptions,
                           annotations: str | Path | None = None, cohort: str | Path | None = None,
                           z_extent_cm: tuple[float, float] = Z_EXTENT_CM, progress: bool = True) -> dict:
    """Convert Lung-PET-CT-Dx; returns the conversion report (see ``dataset_conversion.common``).

    Args:
        src: the folder holding the patients' DICOM folders.
        raw: the ``nnUNet_raw`` folder the weak dataset is written to (id ``options.dataset_id + 2``).
        annotations: folder of the XML files (searched recursively); default ``src/Annotation``,
            else ``src`` itself.
        cohort: folder for the converted NIfTI cohort and report (default ``raw/cohorts/lungdx``).
        z_extent_cm: kept range of slices x spacing.
    """
    import functools

    from nnunet_ts.dataset_conversion.nsclc import group_by_patient

    src, raw = Path(src), Path(raw)
    if annotations is None:
        annotations = src / "Annotation" if (src / "Annotation").is_dir() else src
    index = index_annotations(Path(annotations))
    if not index:
        raise InputError(f"no annotation XML file under {annotations}; pass --annotations with the "
                         f"folder of the <SOPInstanceUID>.xml files")
    cohort = Path(cohort) if cohort is not None else raw / "cohorts" / SOURCE
    options.extra = {**options.extra, "annotations": str(Path(annotations).resolve()),
                     "z_extent_cm": list(z_extent_cm)}
    convert = functools.partial(convert_patient, annotations=index, z_extent_cm=z_extent_cm)
    return run_conversion(SOURCE, group_by_patient(src, progress), convert, src, raw, cohort, options,
                          all_weak=True, progress=progress)
