"""DICOM input: series discovery, CT series reading, RTSTRUCT contour rasterisation.

Libraries, not hand-written parsers: pydicom reads headers (series grouping, modality, RTSTRUCT
contours), SimpleITK's ``ImageSeriesReader`` (GDCM) reads the pixel data with rescale
slope/intercept and builds the geometry, scikit-image's ``polygon`` fills contours.

Conventions: arrays are (z, y, x) as SimpleITK gives them; patient coordinates are DICOM's LPS in
mm. Slices are ordered by their position along the slice normal (row x column cosines), which is
GDCM's own order, so our images equal ``sitk.ImageSeriesReader`` reading
``GetGDCMSeriesFileNames`` of the same series.

Grouping: files are grouped by SeriesInstanceUID. Anonymisers sometimes blank the UIDs; such files
are grouped by what makes one volume instead (patient, modality, frame of reference, orientation,
pixel spacing, rows x columns, series number and description), with a warning, under a made-up id
``no-uid-<hash>`` that ``--series-uid`` accepts. A series is read only if it is a regular stack:
one orientation, slice positions along the slice normal (no gantry tilt: tilted series are rejected,
not resampled), no two slices at one position and no missing slice.
"""
from __future__ import annotations

import hashlib
import re
import warnings
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nnunet_ts.errors import InputError, InputWarning

SECONDARY_CAPTURE_PREFIX = "1.2.840.10008.5.1.4.1.1.7"  # (multi-frame) secondary capture SOP classes
NO_UID_PREFIX = "no-uid-"
_HEADER_TAGS = ("SeriesInstanceUID", "StudyInstanceUID", "PatientID", "Modality", "SOPClassUID",
                "SOPInstanceUID", "ImageType", "SeriesDescription", "FrameOfReferenceUID",
                "ImagePositionPatient", "ImageOrientationPatient", "Rows", "Columns", "PixelSpacing",
                "SamplesPerPixel", "StudyDate", "SeriesNumber")
_NOT_DICOM_SUFFIXES = (".xml", ".json", ".csv", ".txt")
# Tolerances: header values are decimal strings, often rounded to 4-6 digits.
_COSINE_TOL = 1e-4
_MM_TOL = 1e-3


@dataclass
class DicomSeries:
    """One DICOM series found on disk (headers only).

    Attributes:
        series_uid: SeriesInstanceUID, or ``no-uid-<hash>`` for files grouped by geometry because
            their SeriesInstanceUID is blank (``uid_missing``).
        files: the series' files; for image series sorted along the slice normal by
            :func:`sorted_slices` when read.
        sop_uids: SOPInstanceUID of each entry of ``files`` (same order; may be blank).
        positions: ImagePositionPatient (x, y, z mm) per file, None for non-image objects.
        orientations: the distinct ImageOrientationPatient values (rounded); a volume has one.
        pixel_spacings: the distinct PixelSpacing values (row, column mm, rounded).
        transfer_syntaxes: the distinct transfer syntax UIDs of the files (compression).
    """

    series_uid: str
    study_uid: str
    patient_id: str
    modality: str
    sop_class_uid: str
    image_type: tuple[str, ...]
    description: str
    frame_of_reference: str
    orientation: tuple[float, ...] | None
    study_date: str = ""
    files: list[Path] = field(default_factory=list)
    sop_uids: list[str] = field(default_factory=list)
    positions: list[tuple[float, float, float] | None] = field(default_factory=list)
    shapes: set = field(default_factory=set)
    samples_per_pixel: int = 1
    uid_missing: bool = False
    orientations: set = field(default_factory=set)
    pixel_spacings: set = field(default_factory=set)
    transfer_syntaxes: set = field(default_factory=set)

    @property
    def folder(self) -> Path:
        return self.files[0].parent

    def label(self) -> str:
        """Short human description for reports."""
        uid = f"{self.series_uid} (no SeriesInstanceUID; grouped by geometry)" if self.uid_missing else self.series_uid
        return (f"patient {self.patient_id} series {uid} ({self.modality}, "
                f"'{self.description}', {len(self.files)} "
                f"file(s), in {self.folder})")


def _rounded(values, tol: float) -> tuple[float, ...] | None:
    if values is None:
        return None
    try:
        return tuple(round(float(v) / tol) * tol + 0.0 for v in values)
    except (TypeError, ValueError):
        return None


def _read_header(path: Path):
    """(dataset, None) for a DICOM file, (None, why not) otherwise."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        return pydicom.dcmread(path, stop_before_pixels=True, specific_tags=list(_HEADER_TAGS)), None
    except InvalidDicomError:
        pass
    except Exception as exc:  # pydicom raises many types for damaged files
        return None, f"unreadable DICOM ({type(exc).__name__})"
    # Files without the 128-byte preamble (some exporters and anonymisers write them): accepted
    # only when they parse to a dataset with the identifying tags.
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, force=True, specific_tags=list(_HEADER_TAGS))
        if "SOPClassUID" in ds and "Modality" in ds:
            return ds, None
    except Exception:  # noqa: BLE001 - any parse failure means: not DICOM
        pass
    return None, "not DICOM"


def _geometry_key(ds) -> tuple:
    """What makes files one volume when their SeriesInstanceUID is blank."""
    return (str(ds.get("PatientID", "") or ""), str(ds.get("StudyInstanceUID", "") or ""),
            str(ds.get("Modality", "")).upper(), str(ds.get("FrameOfReferenceUID", "") or ""),
            _rounded(ds.get("ImageOrientationPatient"), _COSINE_TOL),
            _rounded(ds.get("PixelSpacing"), _MM_TOL), int(ds.get("Rows", 0) or 0),
            int(ds.get("Columns", 0) or 0), str(ds.get("SeriesNumber", "") or ""),
            str(ds.get("SeriesDescription", "") or ""))


def series_from_header(ds, series_uid: str, uid_missing: bool = False) -> DicomSeries:
    """A series record (no files yet) from one of its files' header (a pydicom Dataset)."""
    iop = ds.get("ImageOrientationPatient")
    return DicomSeries(
        series_uid=series_uid, study_uid=str(ds.get("StudyInstanceUID", "") or ""),
        patient_id=str(ds.get("PatientID", "") or ""), modality=str(ds.get("Modality", "")).upper(),
        sop_class_uid=str(ds.get("SOPClassUID", "")),
        image_type=tuple(str(v).upper() for v in (ds.get("ImageType") or [])),
        description=str(ds.get("SeriesDescription", "") or ""),
        frame_of_reference=str(ds.get("FrameOfReferenceUID", "") or ""),
        orientation=tuple(float(v) for v in iop) if iop is not None else None,
        study_date=str(ds.get("StudyDate", "") or ""),
        samples_per_pixel=int(ds.get("SamplesPerPixel", 1) or 1), uid_missing=uid_missing)


def discover_series(root: str | Path, progress: bool = False) -> list[DicomSeries]:
    """All DICOM series under ``root`` (recursively).

    Files are grouped by SeriesInstanceUID; files whose SeriesInstanceUID is blank (some
    anonymisers blank every UID) are grouped by geometry (see the module docstring) and an
    :class:`~nnunet_ts.errors.InputWarning` says so. Files that are not DICOM (and DICOMDIR
    indexes) are skipped. Returns series sorted by (patient, study, series number, uid).

    Raises:
        InputError: ``root`` is not a folder or holds no DICOM file (the message counts what was
            found and why it was skipped).
    """
    from tqdm import tqdm

    root = Path(root)
    if not root.is_dir():
        raise InputError(f"DICOM folder {root} does not exist or is not a folder")
    every = sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))
    paths = [p for p in every if p.name.upper() != "DICOMDIR" and p.suffix.lower() not in _NOT_DICOM_SUFFIXES]
    found: dict[str, DicomSeries] = {}
    numbers: dict[str, int] = {}
    skipped: Counter = Counter()
    example: dict[str, Path] = {}
    for path in tqdm(paths, desc=f"reading DICOM headers in {root.name}", unit="file", disable=not progress,
                     leave=False):
        ds, why = _read_header(path)
        if ds is None:
            skipped[why] += 1
            example.setdefault(why, path)
            continue
        uid = str(ds.get("SeriesInstanceUID", "") or "").strip()
        uid_missing = not uid
        if uid_missing:
            key = _geometry_key(ds)
            uid = NO_UID_PREFIX + hashlib.sha1(repr(key).encode()).hexdigest()[:10]
        series = found.get(uid)
        if series is None:
            series = series_from_header(ds, uid, uid_missing)
            found[uid] = series
            numbers[uid] = int(ds.get("SeriesNumber", 0) or 0)
        ipp = ds.get("ImagePositionPatient")
        series.files.append(path)
        series.sop_uids.append(str(ds.get("SOPInstanceUID", "") or ""))
        series.positions.append(tuple(float(v) for v in ipp) if ipp is not None else None)
        if "Rows" in ds and "Columns" in ds:
            series.shapes.add((int(ds.Rows), int(ds.Columns)))
        if ds.get("ImageOrientationPatient") is not None:
            series.orientations.add(_rounded(ds.ImageOrientationPatient, _COSINE_TOL))
        if ds.get("PixelSpacing") is not None:
            series.pixel_spacings.add(_rounded(ds.PixelSpacing, _MM_TOL))
        meta = getattr(ds, "file_meta", None)
        series.transfer_syntaxes.add(str(meta.get("TransferSyntaxUID", "") if meta is not None else ""))
    if not found:
        found_here = _skipped_summary(len(every), len(every) - len(paths), skipped, example)
        raise InputError(f"no DICOM file found under {root}: {found_here}; "
                         f"point to the folder holding the patient's series (files may have any name, "
                         f"DICOMDIR is ignored)")
    blank = [s for s in found.values() if s.uid_missing]
    if blank:
        warnings.warn(f"{sum(len(s.files) for s in blank)} DICOM file(s) under {root} have no "
                      f"SeriesInstanceUID (anonymised?); grouped by patient, frame of reference, "
                      f"orientation, pixel spacing and size into {len(blank)} series: "
                      + "; ".join(f"{s.series_uid} ({s.modality}, {len(s.files)} file(s))" for s in blank),
                      InputWarning, stacklevel=2)
    return sorted(found.values(), key=lambda s: (s.patient_id, s.study_uid, numbers[s.series_uid], s.series_uid))


def _skipped_summary(n_files: int, n_index: int, skipped: Counter, example: dict[str, Path]) -> str:
    if n_files == 0:
        return "the folder holds no file"
    parts = [f"{n} {why} (e.g. {example[why].name})" for why, n in sorted(skipped.items())]
    if n_index:
        parts.append(f"{n_index} index or annotation file(s) (DICOMDIR, .xml, .json, .csv, .txt)")
    return f"{n_files} file(s), " + ", ".join(parts)


def ct_exclusion_reason(series: DicomSeries) -> str | None:
    """Why a series is not a plain CT volume (None when it is one).

    Dropped: other modalities (PET, RTSTRUCT, ...), secondary captures (screenshots), fused
    PET/CT (ImageType FUSED/FUSION, or "fused"/"fusion" in the description), localizers (scouts), colour images,
    fewer than 2 slices. Whether the slices form a regular stack is checked when the series is read
    (:func:`check_stack`, :func:`slice_spacing`), so that error names the exact reason.
    """
    if series.modality != "CT":
        kind = {"PT": "PET"}.get(series.modality, series.modality or "unknown modality")
        return f"not CT ({kind})"
    if series.sop_class_uid.startswith(SECONDARY_CAPTURE_PREFIX):
        return "secondary capture"
    # Only explicit fusion markers: the CT half of a PET/CT exam is often described "PET/CT" too.
    if any("FUSED" in t or "FUSION" in t for t in series.image_type) or \
            re.search(r"\bfus(ed|ion)\b", series.description, re.IGNORECASE):
        return "fused PET/CT"
    if "LOCALIZER" in series.image_type:
        return "localizer (scout)"
    if series.samples_per_pixel != 1:
        return "colour image (not a CT volume)"
    if len(series.files) < 2:
        return f"{len(series.files)} slice(s), not a volume"
    return None


def check_stack(series: DicomSeries) -> None:
    """Raise InputError unless the slices share one orientation, size and pixel spacing and all
    have a position (the slice positions themselves are checked by :func:`slice_spacing`)."""
    if len(series.orientations) > 1:
        raise InputError(f"{series.label()}: slices have {len(series.orientations)} different orientations "
                         f"(ImageOrientationPatient); the series mixes acquisitions: split it")
    if len(series.shapes) > 1:
        sizes = ", ".join(f"{r}x{c}" for r, c in sorted(series.shapes))
        raise InputError(f"{series.label()}: slices differ in size (rows x columns: {sizes}); the series "
                         f"mixes acquisitions: split it")
    if len(series.pixel_spacings) > 1:
        raise InputError(f"{series.label()}: slices differ in pixel spacing; the series mixes "
                         f"acquisitions: split it")
    if len(series.shapes) != 1 or series.orientation is None or any(p is None for p in series.positions):
        raise InputError(f"{series.label()}: slices lack ImagePositionPatient, ImageOrientationPatient "
                         f"or Rows/Columns; it cannot be placed in space")


def choose_ct_series(root: str | Path, series_uid: str | None = None) -> DicomSeries:
    """The one plain CT series under ``root`` (or the one with ``series_uid``), headers checked.

    Raises:
        InputError: no DICOM file; no usable CT series (the message lists each series found and
            why it is not usable); several CT series and no ``series_uid``.
    """
    series = discover_series(root)
    reasons = {s.series_uid: ct_exclusion_reason(s) for s in series}
    if series_uid is not None:
        chosen = [s for s in series if s.series_uid == series_uid]
        if not chosen:
            listing = "; ".join(f"{s.series_uid} ({s.modality})" for s in series)
            raise InputError(f"DICOM folder {root} holds no series {series_uid} (series found: {listing}); "
                             f"fix --series-uid")
        if reasons[series_uid] is not None:
            raise InputError(f"{chosen[0].label()} is not a CT volume: {reasons[series_uid]}")
        return chosen[0]
    cts = [s for s in series if reasons[s.series_uid] is None]
    if not cts:
        n_files = sum(len(s.files) for s in series)
        listing = "; ".join(f"{s.series_uid} ({s.modality or 'no modality'}, {len(s.files)} file(s)): "
                            f"{reasons[s.series_uid]}" for s in series)
        raise InputError(f"DICOM folder {root} holds {n_files} DICOM file(s) in {len(series)} series, none "
                         f"a usable CT volume: {listing}; point to the CT's folder")
    if len(cts) > 1:
        listing = "; ".join(f"{s.series_uid} ({len(s.files)} slices, '{s.description}')" for s in cts)
        raise InputError(f"DICOM folder {root} holds {len(cts)} CT series: {listing}; pass --series-uid "
                         f"to choose one")
    return cts[0]


def slice_normal(orientation: Iterable[float]) -> np.ndarray:
    """Unit normal (x, y, z) of the slices from ImageOrientationPatient (row, column cosines)."""
    o = np.asarray(list(orientation), float)
    normal = np.cross(o[:3], o[3:])
    return normal / np.linalg.norm(normal)


def sorted_slices(series: DicomSeries) -> tuple[list[Path], list[str], np.ndarray]:
    """(files, SOPInstanceUIDs, slice positions along the normal in mm), ascending along the normal."""
    normal = slice_normal(series.orientation)
    along = np.array([np.dot(normal, p) for p in series.positions])
    order = np.argsort(along, kind="stable")
    return ([series.files[i] for i in order], [series.sop_uids[i] for i in order], along[order])


def slice_spacing(series: DicomSeries, tolerance: float = 0.05) -> float:
    """Uniform distance between consecutive slices (mm), after checking the stack is regular.

    Raises:
        InputError: mixed orientations, sizes or pixel spacings (:func:`check_stack`), duplicate
            positions, gaps (spacings differ by more than ``tolerance`` relative), or slices
            shifted sideways (gantry tilt), which a volume reader would silently distort.
    """
    check_stack(series)
    normal = slice_normal(series.orientation)
    positions = np.asarray(series.positions, float)
    along = positions @ normal
    order = np.argsort(along, kind="stable")
    positions, along = positions[order], along[order]
    gaps = np.diff(along)
    if len(gaps) == 0 or gaps.min() <= _MM_TOL:
        n_dup = int(np.sum(gaps <= _MM_TOL))
        raise InputError(f"{series.label()}: {n_dup} slice(s) lie at the position of another (e.g. "
                         f"{along[np.argmax(gaps <= _MM_TOL)]:.2f} mm along the slice normal); the series "
                         f"holds duplicate or overlapping acquisitions; split or clean it")
    # Sideways shift of each slice's corner from the first one's, across the slice normal.
    sideways = (positions - positions[0]) - np.outer(along - along[0], normal)
    shift = float(np.linalg.norm(sideways, axis=1).max())
    pixel = min(min(s) for s in series.pixel_spacings) if series.pixel_spacings else 1.0
    if shift > 0.25 * pixel:
        tilt = np.degrees(np.arctan2(np.linalg.norm(sideways[-1]), along[-1] - along[0]))
        raise InputError(f"{series.label()}: slice positions move {shift:.2f} mm sideways across the "
                         f"stack (gantry tilt about {tilt:.1f} degrees, or mixed acquisitions); tilted "
                         f"series are not resampled: correct the tilt (e.g. dcm2niix) and pass the NIfTI")
    if (gaps.max() - gaps.min()) > tolerance * gaps.mean():
        big = int(np.argmax(gaps))
        raise InputError(f"{series.label()}: slice spacing is not uniform ({gaps.min():.2f}-"
                         f"{gaps.max():.2f} mm, largest gap after {along[big]:.2f} mm along the slice "
                         f"normal): slices are missing; complete the series or drop it")
    return float(gaps.mean())


def transfer_syntax_names(series: DicomSeries) -> list[str]:
    """Readable names of the series' transfer syntaxes (e.g. 'JPEG 2000 Image Compression (Lossless Only)')."""
    from pydicom.uid import UID

    return sorted(UID(t).name if t else "unknown (no file meta)" for t in series.transfer_syntaxes) or ["unknown"]


def read_ct(series: DicomSeries):
    """Read a CT series as a SimpleITK image in HU (int16), slices ordered along the normal.

    Rescale slope and intercept are applied by GDCM; values are rounded to whole HU.

    Raises:
        InputError: not a plain CT (see :func:`ct_exclusion_reason`), missing slices, or a file
            GDCM cannot decode.
    """
    import SimpleITK as sitk

    reason = ct_exclusion_reason(series)
    if reason is not None:
        raise InputError(f"{series.label()} is not a CT volume: {reason}")
    slice_spacing(series)
    files, _, _ = sorted_slices(series)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames([str(f) for f in files])
    try:
        image = reader.Execute()
    except RuntimeError as exc:
        last = str(exc).strip().splitlines()[-1] if str(exc).strip() else "unknown reason"
        raise InputError(f"{series.label()} cannot be decoded ({last}; transfer syntax "
                         f"{', '.join(transfer_syntax_names(series))}); check the files are complete, "
                         f"or decompress them (e.g. `gdcmconv --raw`)") from None
    hu = sitk.GetArrayViewFromImage(image)
    out = sitk.GetImageFromArray(np.clip(np.rint(hu), -32768, 32767).astype(np.int16))
    out.CopyInformation(image)
    return out


# ----------------------------------------------------------------------------- RTSTRUCT

def referenced_series_uids(rtstruct) -> set[str]:
    """SeriesInstanceUIDs an RTSTRUCT dataset says its contours were drawn on."""
    uids = set()
    for frame in rtstruct.get("ReferencedFrameOfReferenceSequence", []) or []:
        for study in frame.get("RTReferencedStudySequence", []) or []:
            for ser in study.get("RTReferencedSeriesSequence", []) or []:
                uids.add(str(ser.get("SeriesInstanceUID", "")))
    return uids


def roi_names(rtstruct) -> dict[int, str]:
    """ROINumber -> ROIName of an RTSTRUCT dataset."""
    return {int(r.ROINumber): str(r.get("ROIName", "")).strip()
            for r in rtstruct.get("StructureSetROISequence", []) or []}


def match_rois(rtstruct, pattern: str) -> dict[int, str]:
    """ROIs whose name matches ``pattern`` (a regular expression, whole name, case-insensitive)."""
    regex = re.compile(pattern, re.IGNORECASE)
    return {n: name for n, name in roi_names(rtstruct).items() if regex.fullmatch(name)}


@dataclass(frozen=True)
class RasterisedRoi:
    """A mask rasterised from RTSTRUCT contours.

    Attributes:
        mask: uint8 {0, 1}, (z, y, x) on the CT grid.
        roi_names: the ROIs merged into the mask.
        n_contours: closed planar contours filled.
        off_plane: contours more than a quarter slice from a CT slice plane (snapped to the nearest).
        outside: contours whose plane lies outside the CT (ignored).
    """

    mask: np.ndarray
    roi_names: tuple[str, ...]
    n_contours: int
    off_plane: int
    outside: int


def read_rtstruct(path: str | Path):
    """The full pydicom dataset of an RTSTRUCT file.

    Raises:
        InputError: unreadable or not an RTSTRUCT.
    """
    import pydicom

    try:
        ds = pydicom.dcmread(path)
    except Exception as exc:  # pydicom raises many types for damaged files
        raise InputError(f"RTSTRUCT {path} cannot be read ({exc}); re-download it") from None
    if str(ds.get("Modality", "")).upper() != "RTSTRUCT":
        raise InputError(f"{path} is not an RTSTRUCT (modality {ds.get('Modality', '?')})")
    return ds


def rasterise_rtstruct(path: str | Path, image, roi_pattern: str) -> RasterisedRoi:
    """Rasterise the ROIs of an RTSTRUCT matching ``roi_pattern`` onto the grid of ``image``.

    Contour points (patient mm) are mapped to continuous voxel indices through the image's origin,
    spacing and direction; each contour is filled in its slice with ``skimage.draw.polygon``
    (voxel centres inside the polygon). Contours in one slice are combined by XOR, the usual
    RTSTRUCT convention for holes (an inner contour cuts out of an outer one); matching ROIs are
    combined by union.

    Raises:
        InputError: unreadable file, no ROI matching the pattern (the message lists the ROI
            names), or matching ROIs without any closed planar contour.
    """
    from skimage.draw import polygon

    ds = read_rtstruct(path)
    path = Path(path)
    matched = match_rois(ds, roi_pattern)
    if not matched:
        names = ", ".join(repr(n) for n in roi_names(ds).values()) or "none"
        raise InputError(f"RTSTRUCT {path} has no ROI matching --roi-pattern {roi_pattern!r} (ROIs: "
                         f"{names}); pass a pattern that selects the tumour (GTV)")
    size = image.GetSize()
    shape = (size[2], size[1], size[0])
    origin = np.asarray(image.GetOrigin(), float)
    # voxel index (x, y, z) -> point: origin + D @ diag(spacing) @ index
    to_index = np.linalg.inv(np.asarray(image.GetDirection(), float).reshape(3, 3)
                             @ np.diag(image.GetSpacing()))
    mask = np.zeros(shape, dtype=bool)
    n = off_plane = outside = 0
    for roi in ds.get("ROIContourSequence", []) or []:
        if int(roi.get("ReferencedROINumber", -1)) not in matched:
            continue
        for contour in roi.get("ContourSequence", []) or []:
            if str(contour.get("ContourGeometricType", "CLOSED_PLANAR")).upper() != "CLOSED_PLANAR":
                continue
            points = np.asarray(contour.ContourData, float).reshape(-1, 3)
            if len(points) < 3:
                continue
            index = (to_index @ (points - origin).T).T  # (n, 3): x, y, z indices
            z_mean = index[:, 2].mean()
            z = int(np.rint(z_mean))
            if not 0 <= z < shape[0]:
                outside += 1
                continue
            if abs(z_mean - z) > 0.25 or np.ptp(index[:, 2]) > 0.5:
                off_plane += 1
            rows, cols = polygon(index[:, 1], index[:, 0], shape=shape[1:])
            fill = np.zeros(shape[1:], dtype=bool)
            fill[rows, cols] = True
            mask[z] ^= fill
            n += 1
    if n == 0:
        raise InputError(f"RTSTRUCT {path}: ROI(s) {', '.join(matched.values())} hold no closed planar "
                         f"contour inside the CT; check that the RTSTRUCT belongs to this CT series")
    return RasterisedRoi(mask.astype(np.uint8), tuple(sorted(matched.values())), n, off_plane, outside)
