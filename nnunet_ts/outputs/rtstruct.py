"""The tumour mask as an RT Structure Set (RTSTRUCT) for treatment planning systems.

Written with pydicom, contours traced with scikit-image, rather than with rt-utils:
- highdicom has no RTSTRUCT writer; rt-utils would add OpenCV (opencv-python and its system
  libraries) for one contour call, and traces contours through the centres of the boundary
  voxels, so the polygon lies half a voxel inside the mask's edge and small lesions come back
  smaller when a planning system fills the contour.
- ``skimage.measure.find_contours`` at level 0.5 (marching squares) puts every vertex halfway
  between a tumour voxel centre and a background one, so a reader that fills the voxel centres
  inside the polygons (as DICOM viewers and :func:`nnunet_ts.io.dicom.rasterise_rtstruct` do)
  gets the mask back voxel for voxel.

One ROI, contours per image slice (CLOSED_PLANAR, patient coordinates in mm), each referencing
its CT slice's SOP instance; the structure set references the CT's frame of reference, study and
series. Holes: the inner outline of a ring is written as one more contour in the same slice. Most
planning systems combine the contours of a slice by exclusive or, which cuts the hole out (as
``rasterise_rtstruct`` does); a reader that unites them fills the hole. Diagonally touching voxels
become separate contours. The structure set is marked UNAPPROVED: a clinician reviews it.
"""
from __future__ import annotations

import datetime
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from nnunet_ts import __version__
from nnunet_ts.io.atomic import write_atomic
from nnunet_ts.outputs.source_series import SourceSeries, load_source_series

RTSTRUCT_STORAGE = "1.2.840.10008.5.1.4.1.1.481.3"
STUDY_COMPONENT = "1.2.840.10008.3.1.2.3.1"  # the SOP class RTSTRUCTs use to reference a study
RTSTRUCT_SERIES_NUMBER = 902


def slice_contours(slice_mask: np.ndarray) -> list[np.ndarray]:
    """Closed outlines of a 2D mask (y, x) as (n, 2) arrays of (x, y) pixel indices, the last
    vertex not repeated, collinear vertices dropped. Outer outlines and hole outlines alike."""
    from skimage.measure import find_contours

    padded = np.pad(np.asarray(slice_mask, dtype=np.uint8), 1)
    outlines = []
    for rc in find_contours(padded, 0.5):
        xy = rc[:-1, ::-1] - 1.0  # find_contours repeats the first vertex at the end of a closed outline
        prev, nxt = np.roll(xy, 1, 0), np.roll(xy, -1, 0)
        turn = (xy - prev)[:, 0] * (nxt - xy)[:, 1] - (xy - prev)[:, 1] * (nxt - xy)[:, 0]
        outlines.append(xy[np.abs(turn) > 1e-9])
    return outlines


def _image_reference(sop_class: str, sop_uid: str):
    from pydicom.dataset import Dataset

    ref = Dataset()
    ref.ReferencedSOPClassUID, ref.ReferencedSOPInstanceUID = sop_class, sop_uid
    return ref


def _header(source: SourceSeries, series_number: int, label: str):
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    ct = source.datasets[0]
    now = datetime.datetime.now()
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPClassUID, ds.file_meta.MediaStorageSOPInstanceUID = RTSTRUCT_STORAGE, ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID = RTSTRUCT_STORAGE
    ds.InstanceCreationDate, ds.InstanceCreationTime = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
    for keyword in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyInstanceUID", "StudyDate",
                    "StudyTime", "ReferringPhysicianName", "StudyID", "AccessionNumber", "StudyDescription"):
        if keyword in ct:
            setattr(ds, keyword, ct.data_element(keyword).value)
    ds.Modality, ds.SeriesInstanceUID, ds.SeriesNumber = "RTSTRUCT", generate_uid(), series_number
    ds.SeriesDescription, ds.OperatorsName = "nnunet_ts tumour contours", ""
    ds.Manufacturer, ds.ManufacturerModelName, ds.SoftwareVersions = "nnunet_ts", "nnunet_ts", __version__
    ds.FrameOfReferenceUID = source.series.frame_of_reference
    ds.StructureSetLabel, ds.StructureSetName = label, label
    ds.StructureSetDate, ds.StructureSetTime = ds.InstanceCreationDate, ds.InstanceCreationTime
    ds.ApprovalStatus = "UNAPPROVED"
    return ds


def write_rtstruct(mask: np.ndarray, source_files: Sequence[str | Path], path: str | Path, *,
                   roi_name: str = "Tumour", roi_color: tuple[int, int, int] = (255, 0, 0),
                   interpreted_type: str = "GTV", series_number: int = RTSTRUCT_SERIES_NUMBER) -> Path:
    """Write ``mask`` as an RTSTRUCT with one ROI, contoured on every slice of the CT series.

    Args:
        mask: (z, y, x) nonzero = tumour, on the series' grid as
            :func:`nnunet_ts.io.dicom.read_ct` reads it.
        source_files: the CT series' DICOM files, in any order.
        path: the RTSTRUCT file to write (replaced whole if it exists; parent folder must exist).
        roi_name: the ROI's name; roi_color: its display colour (RGB 0-255);
        interpreted_type: RTROIInterpretedType (GTV: the visible tumour).

    Returns:
        ``path``. An empty mask gives an ROI without contours.

    Raises:
        InputError: the files are not one CT series, or the mask's shape differs from it.
    """
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence as DicomSequence

    source = load_source_series(source_files)
    binary = source.check_mask(mask)
    ds = _header(source, series_number, "nnunet_ts")
    frame_uid, ct_class = source.series.frame_of_reference, str(source.datasets[0].SOPClassUID)
    sop_uids = [str(d.SOPInstanceUID) for d in source.datasets]

    series_ref = Dataset()
    series_ref.SeriesInstanceUID = source.series.series_uid
    series_ref.ContourImageSequence = DicomSequence([_image_reference(ct_class, u) for u in sop_uids])
    study_ref = Dataset()
    study_ref.ReferencedSOPClassUID, study_ref.ReferencedSOPInstanceUID = STUDY_COMPONENT, source.series.study_uid
    study_ref.RTReferencedSeriesSequence = DicomSequence([series_ref])
    frame_ref = Dataset()
    frame_ref.FrameOfReferenceUID = frame_uid
    frame_ref.RTReferencedStudySequence = DicomSequence([study_ref])
    ds.ReferencedFrameOfReferenceSequence = DicomSequence([frame_ref])

    roi = Dataset()
    roi.ROINumber, roi.ReferencedFrameOfReferenceUID, roi.ROIName = 1, frame_uid, roi_name
    roi.ROIGenerationAlgorithm, roi.ROIGenerationDescription = "AUTOMATIC", f"nnunet_ts {__version__}"
    ds.StructureSetROISequence = DicomSequence([roi])

    contours = DicomSequence()
    for z in np.nonzero(binary.any(axis=(1, 2)))[0]:
        for xy in slice_contours(binary[z]):
            index = np.column_stack([xy, np.full(len(xy), float(z))])
            points = source.to_patient(index)
            c = Dataset()
            c.ContourImageSequence = DicomSequence([_image_reference(ct_class, sop_uids[z])])
            c.ContourGeometricType, c.NumberOfContourPoints = "CLOSED_PLANAR", len(points)
            c.ContourNumber = len(contours) + 1
            c.ContourData = [f"{v:.3f}" for v in points.reshape(-1)]
            contours.append(c)
    roi_contour = Dataset()
    roi_contour.ROIDisplayColor, roi_contour.ReferencedROINumber = list(roi_color), 1
    if len(contours):
        roi_contour.ContourSequence = contours
    ds.ROIContourSequence = DicomSequence([roi_contour])

    observation = Dataset()
    observation.ObservationNumber, observation.ReferencedROINumber = 1, 1
    observation.RTROIInterpretedType, observation.ROIInterpreter = interpreted_type, ""
    ds.RTROIObservationsSequence = DicomSequence([observation])

    path = Path(path)
    write_atomic(path, lambda f: ds.save_as(f, enforce_file_format=True))
    return path
