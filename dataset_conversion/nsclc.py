"""NSCLC-Radiomics (DICOM CT + RTSTRUCT) -> cohort + teacher/student/weak datasets.

Layout read (as TCIA's downloader writes it; any nesting works, series are found by UID)::

    NSCLC-Radiomics/LUNG1-001/<study>/<CT series>/*.dcm
    NSCLC-Radiomics/LUNG1-001/<study>/<RTSTRUCT series>/1-1.dcm

Per patient, each plain CT series is paired with the RTSTRUCT that references it (by
SeriesInstanceUID, else by FrameOfReferenceUID). The tumour is the union of the ROIs whose name
matches ``roi_pattern`` (default ``GTV-1``, the primary GTV of NSCLC-Radiomics), rasterised onto
the CT grid. A CT without RTSTRUCT, an RTSTRUCT without a matching ROI, or contours that fill no
voxel drop that scan, with the reason in the report.
"""
from __future__ import annotations

from pathlib import Path

from nnunet_ts.dataset_conversion.common import (
    ConversionOptions,
    ConvertedCase,
    Dropped,
    run_conversion,
    safe_id,
    write_case_files,
)
from nnunet_ts.errors import InputError

SOURCE = "nsclc"
DEFAULT_ROI_PATTERN = r"GTV[-_ ]?1"


def group_by_patient(src: Path, progress: bool = True) -> list[tuple[str, object]]:
    """(key, (patient id, its series)) for every patient under ``src``."""
    from nnunet_ts.io.dicom import discover_series

    patients: dict[str, list] = {}
    for series in discover_series(src, progress=progress):
        patient = series.patient_id or series.folder.relative_to(src).parts[0]
        patients.setdefault(patient, []).append(series)
    return [(patient, (patient, series)) for patient, series in sorted(patients.items())]


def _pair(ct, rtstructs: list) -> list:
    """RTSTRUCT (path, dataset) pairs drawn on ``ct``: by series UID first, then frame of reference."""
    from nnunet_ts.io.dicom import referenced_series_uids

    by_series = [r for r in rtstructs if ct.series_uid in referenced_series_uids(r[1])]
    if by_series:
        return by_series
    return [r for r in rtstructs if ct.frame_of_reference and
            str(r[1].get("FrameOfReferenceUID", "")) == ct.frame_of_reference]


def convert_patient(item, folder: Path, roi_pattern: str = DEFAULT_ROI_PATTERN) -> list:
    """All CT + RTSTRUCT scans of one patient into the cohort folder."""
    from nnunet_ts.io.dicom import ct_exclusion_reason, rasterise_rtstruct, read_ct, read_rtstruct

    patient, series = item
    rtstructs, results = [], []
    for s in series:
        if s.modality == "RTSTRUCT":
            for path in s.files:
                try:
                    rtstructs.append((path, read_rtstruct(path)))
                except InputError as exc:
                    results.append(Dropped(str(path), str(exc)))
    for s in series:
        if s.modality not in ("CT", "RTSTRUCT"):
            results.append(Dropped(s.label(), f"not used (modality {s.modality or 'unknown'})"))
    cts = [s for s in series if s.modality == "CT"]
    used = set()
    for ct_series in cts:
        reason = ct_exclusion_reason(ct_series)
        if reason is not None:
            results.append(Dropped(ct_series.label(), reason))
            continue
        pairs = _pair(ct_series, rtstructs)
        if not pairs:
            results.append(Dropped(ct_series.label(), "no RTSTRUCT references this CT"))
            continue
        try:
            image = read_ct(ct_series)
            roi, errors = None, []
            for path, _ in pairs:
                used.add(path)
                try:
                    roi = rasterise_rtstruct(path, image, roi_pattern)
                    break
                except InputError as exc:
                    errors.append(str(exc))
            if roi is None:
                raise InputError("; ".join(errors))
            if not roi.mask.any():
                raise InputError(f"RTSTRUCT {path}: ROI(s) {', '.join(roi.roi_names)} fill no voxel of the CT")
        except InputError as exc:
            results.append(Dropped(ct_series.label(), str(exc)))
            continue
        notes = [f"ROI {', '.join(roi.roi_names)} from {path.name}: {roi.n_contours} contours"]
        if roi.off_plane:
            notes.append(f"{roi.off_plane} contour(s) off the CT slice planes, snapped to the nearest slice")
        if roi.outside:
            notes.append(f"{roi.outside} contour(s) outside the CT ignored")
        n_done = sum(isinstance(r, ConvertedCase) for r in results)
        case_id = f"nsclc_{safe_id(patient)}" + (f"_{n_done + 1}" if n_done else "")
        results.append(write_case_files(folder, case_id, safe_id(patient), image, roi.mask, None,
                                        source=ct_series.label(), notes=notes))
    for path, _ in rtstructs:
        if path not in used:
            results.append(Dropped(str(path), "RTSTRUCT references no plain CT series of this patient"))
    if not cts:
        results.append(Dropped(f"patient {patient}", "no CT series"))
    return results


def convert_nsclc_radiomics(src: str | Path, raw: str | Path, options: ConversionOptions,
                            cohort: str | Path | None = None, roi_pattern: str = DEFAULT_ROI_PATTERN,
                            progress: bool = True) -> dict:
    """Convert NSCLC-Radiomics; returns the conversion report (see ``dataset_conversion.common``).

    Args:
        src: the folder holding the patients' DICOM folders.
        raw: the ``nnUNet_raw`` folder the datasets are written to.
        options: dataset ids, subsets, segbox form, lung cropping.
        cohort: folder for the converted NIfTI cohort and report (default ``raw/cohorts/nsclc``).
        roi_pattern: regular expression matched against whole ROI names, case-insensitive.
    """
    import functools
    import re

    try:
        re.compile(roi_pattern)
    except re.error as exc:
        raise InputError(f"--roi-pattern {roi_pattern!r} is not a valid regular expression ({exc})") from None
    src, raw = Path(src), Path(raw)
    cohort = Path(cohort) if cohort is not None else raw / "cohorts" / SOURCE
    options.extra = {**options.extra, "roi_pattern": roi_pattern}
    return run_conversion(SOURCE, group_by_patient(src, progress), functools.partial(
        convert_patient, roi_pattern=roi_pattern), src, raw, cohort, options, progress=progress)
