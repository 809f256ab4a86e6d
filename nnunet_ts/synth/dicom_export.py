"""Synthetic DICOM in the real formats, written with pydicom: CT series, PET and fused series,
secondary captures, RTSTRUCTs with planar contours, and PASCAL-VOC box XML files.

The DICOM side of the synthetic data: the readers and converters (``io.dicom``, ``dataset_conversion``)
are tested and benchmarked on what this writes.

Geometry is given like SimpleITK's: origin (x, y, z mm, LPS), spacing (x, y, z), a 3x3 direction
whose columns are the row, column and slice-normal directions. Files get random names and are
written in shuffled order, so readers must sort slices by position, not by name.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

CT_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
PET_STORAGE = "1.2.840.10008.5.1.4.1.1.128"
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
RTSTRUCT_STORAGE = "1.2.840.10008.5.1.4.1.1.481.3"


def rotation(tilt_deg: float = 12.0, yaw_deg: float = 25.0) -> np.ndarray:
    """A proper rotation (columns: row, column, normal directions), not axis-aligned."""
    a, b = np.radians(tilt_deg), np.radians(yaw_deg)
    rx = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    rz = np.array([[np.cos(b), -np.sin(b), 0], [np.sin(b), np.cos(b), 0], [0, 0, 1]])
    return rz @ rx


@dataclass
class SeriesSpec:
    hu: np.ndarray                       # (z, y, x) HU
    spacing: tuple[float, float, float]  # x, y, z mm
    origin: tuple[float, float, float]
    direction: np.ndarray                # 3x3
    slope: float = 1.0
    intercept: float = -1024.0
    modality: str = "CT"
    sop_class: str = CT_STORAGE
    description: str = "CT chest"
    image_type: tuple[str, ...] = ("ORIGINAL", "PRIMARY", "AXIAL")
    patient_id: str = "P001"
    study_uid: str = ""
    frame_uid: str = ""

    def point(self, index_xyz) -> np.ndarray:
        """Patient position (mm) of a continuous voxel index (x, y, z)."""
        return np.asarray(self.origin) + self.direction @ (np.asarray(self.spacing) * np.asarray(index_xyz, float))


@dataclass
class WrittenSeries:
    series_uid: str
    frame_uid: str
    study_uid: str
    sop_uids: list[str]          # per slice index z
    files: list[Path]


def _base(spec_modality: str, sop_class: str, patient_id: str, study_uid: str, series_uid: str,
          sop_uid: str) -> Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, sop_uid
    ds.Modality = spec_modality
    ds.PatientID, ds.PatientName = patient_id, f"Test^{patient_id}"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
    ds.StudyDate, ds.SeriesNumber = "20200101", 1
    return ds


def write_series(folder: Path, spec: SeriesSpec, rng: np.random.Generator) -> WrittenSeries:
    """One file per slice, random file names, written in shuffled order."""
    folder.mkdir(parents=True, exist_ok=True)
    study = spec.study_uid or generate_uid()
    series_uid, frame = generate_uid(), spec.frame_uid or generate_uid()
    nz, ny, nx = spec.hu.shape
    raw = np.rint((spec.hu - spec.intercept) / spec.slope)
    assert raw.min() >= 0 and raw.max() < 65536, "choose slope/intercept so raw values fit uint16"
    sop_uids = [generate_uid() for _ in range(nz)]
    files: list[Path | None] = [None] * nz
    for z in rng.permutation(nz):
        z = int(z)
        ds = _base(spec.modality, spec.sop_class, spec.patient_id, study, series_uid, sop_uids[z])
        ds.FrameOfReferenceUID = frame
        ds.SeriesDescription = spec.description
        ds.ImageType = list(spec.image_type)
        ds.InstanceNumber = int(rng.integers(1, 10_000))  # deliberately meaningless
        ds.ImagePositionPatient = [f"{v:.6f}" for v in spec.point((0, 0, z))]
        ds.ImageOrientationPatient = [f"{v:.8f}" for v in (*spec.direction[:, 0], *spec.direction[:, 1])]
        ds.PixelSpacing = [spec.spacing[1], spec.spacing[0]]  # row spacing (y), column spacing (x)
        ds.SliceThickness = spec.spacing[2]
        ds.Rows, ds.Columns = ny, nx
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.RescaleSlope, ds.RescaleIntercept, ds.RescaleType = spec.slope, spec.intercept, "HU"
        ds.PixelData = raw[z].astype(np.uint16).tobytes()
        path = folder / f"{rng.integers(1 << 40):x}.dcm"
        ds.save_as(path, enforce_file_format=True)
        files[z] = path
    return WrittenSeries(series_uid, frame, study, sop_uids, files)


def write_secondary_capture(folder: Path, patient_id: str, study_uid: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    ds = _base("OT", SECONDARY_CAPTURE, patient_id, study_uid, generate_uid(), generate_uid())
    ds.SeriesDescription = "screen save"
    ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.PhotometricInterpretation = 8, 8, 3, "RGB"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation, ds.PlanarConfiguration = 8, 8, 7, 0, 0
    ds.PixelData = bytes(8 * 8 * 3)
    ds.save_as(folder / "sc.dcm", enforce_file_format=True)


def ellipse_contours(spec: SeriesSpec, centre_xyz, radii_xyz, n_points: int = 96):
    """Per slice, the cross-section of an ellipsoid given in voxel indices, as patient-coordinate
    polygons; plus the voxel mask of centres inside the ellipsoid (the ground truth)."""
    nz, ny, nx = spec.hu.shape
    cx, cy, cz = centre_xyz
    rx, ry, rz = radii_xyz
    z, y, x = np.meshgrid(np.arange(nz), np.arange(ny), np.arange(nx), indexing="ij")
    mask = (((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 + ((z - cz) / rz) ** 2 <= 1).astype(np.uint8)
    contours = []
    t = np.linspace(0, 2 * np.pi, n_points, endpoint=False)
    for k in range(nz):
        f = 1 - ((k - cz) / rz) ** 2
        if f <= 0:
            continue
        # a polygon with vertices on the ellipse, scaled so its area matches the ellipse
        scale = np.sqrt(f) * np.sqrt(2 * np.pi / (n_points * np.sin(2 * np.pi / n_points)))
        idx = np.stack([cx + rx * scale * np.cos(t), cy + ry * scale * np.sin(t), np.full_like(t, k)], 1)
        contours.append((k, np.array([spec.point(i) for i in idx])))
    return contours, mask


def write_rtstruct(path: Path, ct: WrittenSeries, spec: SeriesSpec, rois: dict[str, list]) -> None:
    """An RTSTRUCT referencing ``ct`` with ROIs name -> [(slice index, (n, 3) points mm)]."""
    path.parent.mkdir(parents=True, exist_ok=True)
    ds = _base("RTSTRUCT", RTSTRUCT_STORAGE, spec.patient_id, ct.study_uid, generate_uid(), generate_uid())
    ds.StructureSetLabel = "RTSTRUCT"
    ds.FrameOfReferenceUID = ct.frame_uid
    ser = Dataset()
    ser.SeriesInstanceUID = ct.series_uid
    ser.ContourImageSequence = Sequence([_image_ref(u) for u in ct.sop_uids])
    study = Dataset()
    study.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.3.1"
    study.ReferencedSOPInstanceUID = ct.study_uid
    study.RTReferencedSeriesSequence = Sequence([ser])
    frame = Dataset()
    frame.FrameOfReferenceUID = ct.frame_uid
    frame.RTReferencedStudySequence = Sequence([study])
    ds.ReferencedFrameOfReferenceSequence = Sequence([frame])
    ds.StructureSetROISequence, ds.ROIContourSequence, ds.RTROIObservationsSequence = Sequence(), Sequence(), Sequence()
    for number, (name, contours) in enumerate(rois.items(), start=1):
        roi = Dataset()
        roi.ROINumber, roi.ROIName, roi.ReferencedFrameOfReferenceUID = number, name, ct.frame_uid
        roi.ROIGenerationAlgorithm = "MANUAL"
        ds.StructureSetROISequence.append(roi)
        rc = Dataset()
        rc.ReferencedROINumber, rc.ROIDisplayColor = number, [255, 0, 0]
        rc.ContourSequence = Sequence()
        for k, points in contours:
            c = Dataset()
            c.ContourGeometricType = "CLOSED_PLANAR"
            c.NumberOfContourPoints = len(points)
            c.ContourData = [f"{v:.4f}" for v in points.reshape(-1)]
            c.ContourImageSequence = Sequence([_image_ref(ct.sop_uids[k])])
            rc.ContourSequence.append(c)
        ds.ROIContourSequence.append(rc)
        obs = Dataset()
        obs.ObservationNumber, obs.ReferencedROINumber, obs.RTROIInterpretedType = number, number, "GTV"
        ds.RTROIObservationsSequence.append(obs)
    ds.save_as(path, enforce_file_format=True)


def _image_ref(sop_uid: str) -> Dataset:
    ref = Dataset()
    ref.ReferencedSOPClassUID, ref.ReferencedSOPInstanceUID = CT_STORAGE, sop_uid
    return ref


def write_voc(path: Path, sop_uid: str, boxes: list[tuple[int, int, int, int]], width: int, height: int) -> None:
    """A PASCAL-VOC annotation as Lung-PET-CT-Dx ships it: one <object> per box, 1-based pixels."""
    path.parent.mkdir(parents=True, exist_ok=True)
    objects = "".join(
        f"<object><name>A</name><pose>Unspecified</pose><truncated>0</truncated><difficult>0</difficult>"
        f"<bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin><xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox></object>"
        for x0, y0, x1, y1 in boxes)
    path.write_text(f"<annotation><folder>A</folder><filename>{sop_uid}</filename>"
                    f"<size><width>{width}</width><height>{height}</height><depth>3</depth></size>"
                    f"<segmented>0</segmented>{objects}</annotation>")
