"""Benchmark NSCLC-Radiomics-style conversion per patient and lung cropping per case.

Writes ``--patients`` synthetic patients as DICOM (a CT series of 512 x 512 x 80 by default, from
the clinical synthetic preset, shuffled file names, rescale intercept -1024) plus an RTSTRUCT whose
GTV-1 contours are the tumour mask's outlines (scikit-image ``find_contours``), then times, each
wall-clock and single process:

1. conversion: ``convert_patient`` of ``dataset_conversion.nsclc`` (header scan, CT reading,
   contour rasterisation, writing CT + mask NIfTI + boxes), per patient, series discovery included;
2. lung cropping: lung mask (lungmask R231 if its weights are found, else the classical mask;
   the method is printed) + crop plan + cropping CT and mask, per case.

The DICOM writer below is a trimmed copy of the test suite's (``tests/factories/dicom_factory.py``): scripts do
not import from ``tests/``.

Run time: not recorded; a few minutes on 2 cores (estimate), more with lungmask.

Usage::

    python scripts/benchmarks/convert.py [--patients 2] [--shape 80 512 512]
        [--lungmask-weights PATH | --lungmask-random]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

CT_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
RTSTRUCT_STORAGE = "1.2.840.10008.5.1.4.1.1.481.3"


# ----- synthetic DICOM (a CT series, an RTSTRUCT): a trimmed copy of tests/factories/dicom_factory.py

@dataclass
class SeriesSpec:
    """Geometry as SimpleITK gives it: origin (x, y, z mm, LPS), spacing (x, y, z), a 3x3 direction whose
    columns are the row, column and slice-normal directions."""

    hu: np.ndarray                       # (z, y, x) HU
    spacing: tuple[float, float, float]  # x, y, z mm
    origin: tuple[float, float, float]
    direction: np.ndarray                # 3x3
    slope: float = 1.0
    intercept: float = -1024.0
    patient_id: str = "P001"

    def point(self, index_xyz) -> np.ndarray:
        """Patient position (mm) of a continuous voxel index (x, y, z)."""
        return np.asarray(self.origin) + self.direction @ (np.asarray(self.spacing) * np.asarray(index_xyz, float))


@dataclass
class WrittenSeries:
    series_uid: str
    frame_uid: str
    study_uid: str
    sop_uids: list[str]  # per slice index z


def _base(modality: str, sop_class: str, patient_id: str, study_uid: str, series_uid: str, sop_uid: str):
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, sop_uid
    ds.Modality = modality
    ds.PatientID, ds.PatientName = patient_id, f"Test^{patient_id}"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
    ds.StudyDate, ds.SeriesNumber = "20200101", 1
    return ds


def write_series(folder: Path, spec: SeriesSpec, rng: np.random.Generator) -> WrittenSeries:
    """One CT file per slice, random file names, written in shuffled order."""
    from pydicom.uid import generate_uid

    folder.mkdir(parents=True, exist_ok=True)
    study, series_uid, frame = generate_uid(), generate_uid(), generate_uid()
    nz, ny, nx = spec.hu.shape
    raw = np.rint((spec.hu - spec.intercept) / spec.slope)
    assert raw.min() >= 0 and raw.max() < 65536, "choose slope/intercept so raw values fit uint16"
    sop_uids = [generate_uid() for _ in range(nz)]
    for z in rng.permutation(nz):
        z = int(z)
        ds = _base("CT", CT_STORAGE, spec.patient_id, study, series_uid, sop_uids[z])
        ds.FrameOfReferenceUID = frame
        ds.SeriesDescription = "CT chest"
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
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
        ds.save_as(folder / f"{rng.integers(1 << 40):x}.dcm", enforce_file_format=True)
    return WrittenSeries(series_uid, frame, study, sop_uids)


def write_rtstruct(path: Path, ct: WrittenSeries, spec: SeriesSpec, rois: dict[str, list]) -> None:
    """An RTSTRUCT referencing ``ct`` with ROIs name -> [(slice index, (n, 3) points mm)]."""
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence
    from pydicom.uid import generate_uid

    def image_ref(sop_uid: str) -> Dataset:
        ref = Dataset()
        ref.ReferencedSOPClassUID, ref.ReferencedSOPInstanceUID = CT_STORAGE, sop_uid
        return ref

    path.parent.mkdir(parents=True, exist_ok=True)
    ds = _base("RTSTRUCT", RTSTRUCT_STORAGE, spec.patient_id, ct.study_uid, generate_uid(), generate_uid())
    ds.StructureSetLabel = "RTSTRUCT"
    ds.FrameOfReferenceUID = ct.frame_uid
    ser = Dataset()
    ser.SeriesInstanceUID = ct.series_uid
    ser.ContourImageSequence = Sequence([image_ref(u) for u in ct.sop_uids])
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
            c.ContourImageSequence = Sequence([image_ref(ct.sop_uids[k])])
            rc.ContourSequence.append(c)
        ds.ROIContourSequence.append(rc)
        obs = Dataset()
        obs.ObservationNumber, obs.ReferencedROINumber, obs.RTROIInterpretedType = number, number, "GTV"
        ds.RTROIObservationsSequence.append(obs)
    ds.save_as(path, enforce_file_format=True)


# ----- the benchmark

def write_patient(folder: Path, seed: int, shape: tuple[int, int, int]) -> None:
    from skimage.measure import find_contours

    from nnunet_ts.synth import SynthConfig, generate_case

    case = generate_case(seed, SynthConfig.clinical(shape, tumour_count_probs=(0.0, 0.6, 0.4, 0.0)))
    spec = SeriesSpec(hu=case.ct.astype(float), spacing=case.geometry.spacing, origin=case.geometry.origin,
                      direction=np.eye(3), slope=1.0, intercept=-1024.0, patient_id=f"LUNG1-{seed:03d}")
    ct = write_series(folder / "ct", spec, np.random.default_rng(seed))
    contours = []
    for z in np.flatnonzero(case.mask.any(axis=(1, 2))):
        for outline in find_contours(np.pad(case.mask[z], 1).astype(float), 0.5):
            rows, cols = outline[:, 0] - 1, outline[:, 1] - 1
            contours.append((int(z), np.array([spec.point((c, r, z)) for r, c in zip(rows, cols, strict=True)])))
    write_rtstruct(folder / "rt" / "1-1.dcm", ct, spec, {"GTV-1": contours})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patients", type=int, default=2)
    parser.add_argument("--shape", type=int, nargs=3, default=(80, 512, 512), metavar=("Z", "Y", "X"))
    parser.add_argument("--lungmask-weights", default=None, help="R231 state dict (default: lungmask's cache)")
    parser.add_argument("--lungmask-random", action="store_true",
                        help="time the lungmask path with randomly initialised R231 weights (same cost as the "
                             "real ones; the crops are meaningless)")
    args = parser.parse_args()
    shape = tuple(args.shape)

    import SimpleITK as sitk

    from nnunet_ts.dataset_conversion.nsclc import convert_patient, group_by_patient
    from nnunet_ts.datasets.lung_crop import crop_array, plan_for_image

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        start = time.perf_counter()
        for p in range(args.patients):
            write_patient(tmp / "src" / f"LUNG1-{p:03d}", p, shape)
        print(f"wrote {args.patients} DICOM patient(s) of {shape[0]} x {shape[1]} x {shape[2]} in "
              f"{time.perf_counter() - start:.1f} s (not timed below)")

        out = tmp / "cohort"
        out.mkdir()
        conversion = []
        for p in range(args.patients):
            start = time.perf_counter()
            [(_, item)] = group_by_patient(tmp / "src" / f"LUNG1-{p:03d}", progress=False)
            results = convert_patient(item, out)
            conversion.append(time.perf_counter() - start)
            assert results and results[0].mask, results
        print(f"NSCLC-like conversion: {np.mean(conversion):6.2f} s/patient "
              f"(min {min(conversion):.2f}, max {max(conversion):.2f}, n={len(conversion)})")

        import torch  # imported before timing: lungmask_weights() asks torch for lungmask's cache

        weights = args.lungmask_weights
        if args.lungmask_random:
            from lungmask.resunet import UNet

            weights = str(tmp / "r231_random.pth")
            torch.save(UNet(n_classes=3, padding=True, depth=5, up_mode="upsample", batch_norm=True,
                            residual=False).state_dict(), weights)
        cropping, method = [], None
        for ct_file in sorted(out.glob("*_ct.nii.gz")):
            image = sitk.ReadImage(str(ct_file))
            mask = sitk.GetArrayViewFromImage(sitk.ReadImage(str(ct_file).replace("_ct.", "_mask.")))
            start = time.perf_counter()
            plan = plan_for_image(image, weights)
            hu = sitk.GetArrayViewFromImage(image)
            for crop in plan.crops:
                crop_array(hu, crop), crop_array(mask, crop)
            cropping.append(time.perf_counter() - start)
            method = plan.method
            sizes = ", ".join(f"{c.side} {c.shape_zyx}" for c in plan.crops)
            print(f"  {ct_file.name}: crops {sizes}")
        print(f"lung cropping ({method}): {np.mean(cropping):6.2f} s/case "
              f"(min {min(cropping):.2f}, max {max(cropping):.2f}, n={len(cropping)})")


if __name__ == "__main__":
    main()
