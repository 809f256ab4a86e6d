"""The CT series a DICOM output refers to: its files read, checked to be one CT series, sorted as
:func:`nnunet_ts.io.dicom.read_ct` sorts them, with the voxel grid a mask must match.

Both DICOM writers (SEG and RTSTRUCT) start here, so a mask's slice ``z`` always belongs to the
same SOP instance as slice ``z`` of the image ``read_ct`` returns.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nnunet_ts.errors import InputError
from nnunet_ts.io.dicom import (
    DicomSeries,
    ct_exclusion_reason,
    series_from_header,
    slice_normal,
    slice_spacing,
    sorted_slices,
)

# Patient and study attributes every derived object copies; DICOM requires them present (type 2) but
# anonymised series often drop some, so the in-memory headers get them empty.
COPIED_TYPE2 = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
                "ReferringPhysicianName", "StudyID", "AccessionNumber")


@dataclass(frozen=True)
class SourceSeries:
    """A CT series sorted along the slice normal.

    Attributes:
        datasets: pydicom headers (no pixel data), slice z at index z; :data:`COPIED_TYPE2`
            attributes the files lack are set empty here (the files are not touched).
        series: the :class:`~nnunet_ts.io.dicom.DicomSeries` (files in the order given).
        shape_zyx: voxel grid (slices, rows, columns).
        origin: patient position (x, y, z mm, LPS) of voxel (0, 0, 0).
        spacing: (x, y, z) mm: column spacing, row spacing, slice distance.
        direction: 3x3, columns = row, column and slice-normal directions (SimpleITK's).
    """

    datasets: list
    series: DicomSeries
    shape_zyx: tuple[int, int, int]
    origin: np.ndarray
    spacing: np.ndarray
    direction: np.ndarray

    def to_patient(self, index_xyz: np.ndarray) -> np.ndarray:
        """Patient positions (n, 3) mm of continuous voxel indices (n, 3) given as (x, y, z)."""
        return self.origin + (np.asarray(index_xyz, float) * self.spacing) @ self.direction.T

    def check_mask(self, mask: np.ndarray, what: str = "mask") -> np.ndarray:
        """``mask`` as bool (z, y, x) after checking it is on this grid.

        Raises:
            InputError: shape differs from the series' (slices, rows, columns).
        """
        mask = np.asarray(mask)
        if mask.shape != self.shape_zyx:
            raise InputError(f"{what} has shape (z, y, x) {mask.shape} but {self.series.label()} has "
                             f"{self.shape_zyx} (slices, rows, columns); write the mask predicted on this series")
        return mask != 0


def load_source_series(source_files: Sequence[str | Path]) -> SourceSeries:
    """Read and check the headers of one CT series (files in any order).

    Raises:
        InputError: no files, a file that is not DICOM, files of several series, or a series that
            is not a plain CT volume (see :func:`~nnunet_ts.io.dicom.ct_exclusion_reason`) or
            misses slices.
    """
    import pydicom

    files = [Path(f) for f in source_files]
    if not files:
        raise InputError("no CT files given; pass the DICOM files of the CT series the mask was predicted on")
    datasets, by_series = [], {}
    for f in files:
        try:
            ds = pydicom.dcmread(f, stop_before_pixels=True)
        except Exception as exc:  # pydicom raises many types for files that are not DICOM
            raise InputError(f"{f} is not a readable DICOM file ({type(exc).__name__}); pass only the CT "
                             f"series' files") from None
        for keyword in COPIED_TYPE2:
            if keyword not in ds:
                setattr(ds, keyword, "")
        datasets.append(ds)
        by_series.setdefault(str(ds.get("SeriesInstanceUID", "")), []).append(f)
    if len(by_series) > 1:
        counts = ", ".join(f"{uid or '(none)'}: {len(v)} file(s), e.g. {v[0]}" for uid, v in by_series.items())
        raise InputError(f"the CT files belong to {len(by_series)} series ({counts}); pass the files of one "
                         f"CT series only")
    first = datasets[0]
    series = series_from_header(first, str(first.get("SeriesInstanceUID", "")))
    for f, ds in zip(files, datasets):
        ipp = ds.get("ImagePositionPatient")
        series.files.append(f)
        series.sop_uids.append(str(ds.get("SOPInstanceUID", "")))
        series.positions.append(tuple(float(v) for v in ipp) if ipp is not None else None)
        if "Rows" in ds and "Columns" in ds:
            series.shapes.add((int(ds.Rows), int(ds.Columns)))
    reason = ct_exclusion_reason(series)
    if reason is not None:
        raise InputError(f"{series.label()} is not a CT volume ({reason}); pass the files of the CT series "
                         f"the mask was predicted on")
    dz = slice_spacing(series)
    sorted_files, _, _ = sorted_slices(series)
    by_file = dict(zip(files, datasets))
    ordered = [by_file[f] for f in sorted_files]
    if "PixelSpacing" not in ordered[0]:
        raise InputError(f"{series.label()} has no PixelSpacing; it is not a CT volume the mask can refer to")
    row_spacing, column_spacing = (float(v) for v in ordered[0].PixelSpacing)
    o = np.asarray(series.orientation, float)
    direction = np.stack([o[:3], o[3:], slice_normal(o)], 1)
    (rows, columns), = series.shapes
    return SourceSeries(ordered, series, (len(ordered), rows, columns),
                        np.asarray([float(v) for v in ordered[0].ImagePositionPatient]),
                        np.array([column_spacing, row_spacing, dz]), direction)
