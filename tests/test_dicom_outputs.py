"""DICOM SEG and RTSTRUCT writers (nnunet_ts.outputs) on a synthetic CT series: read back, placed on
the series' grid and compared with the mask; references checked against the CT's UIDs.

The series (nnunet_ts.synth.dicom_export) has an oblique direction, anisotropic voxels, random file
names and shuffled file order, so nothing works by accident of an identity geometry or sorted names.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
import pytest

from nnunet_ts.errors import InputError
from nnunet_ts.io.dicom import discover_series, rasterise_rtstruct, read_ct
from nnunet_ts.outputs import write_dicom_seg, write_rtstruct
from nnunet_ts.synth.dicom_export import PET_STORAGE, SeriesSpec, WrittenSeries, rotation, write_series

SHAPE = (12, 32, 40)            # z, y, x
SPACING = (0.8, 0.9, 2.5)       # x, y, z mm
SEG_STORAGE = "1.2.840.10008.5.1.4.1.1.66.4"


@dataclass
class Series:
    spec: SeriesSpec
    written: WrittenSeries
    image: object  # SimpleITK image as read_ct reads it


def spec(modality="CT", sop_class=None, **kw) -> SeriesSpec:
    extra = {} if sop_class is None else {"sop_class": sop_class}
    return SeriesSpec(hu=np.full(SHAPE, -800.0), spacing=SPACING, origin=(-120.5, 33.25, -410.0),
                      direction=rotation(), modality=modality, **extra, **kw)


@pytest.fixture(scope="module")
def series(tmp_path_factory) -> Series:
    folder = tmp_path_factory.mktemp("ct")
    s = spec(patient_id="OUT001")
    written = write_series(folder, s, np.random.default_rng(7))
    (found,) = discover_series(folder)
    return Series(s, written, read_ct(found))


def shapes() -> dict[str, np.ndarray]:
    z, y, x = np.mgrid[:SHAPE[0], :SHAPE[1], :SHAPE[2]]
    px, py, pz = x * SPACING[0], y * SPACING[1], z * SPACING[2]
    sphere = (px - 16) ** 2 + (py - 14) ** 2 + (pz - 14) ** 2 <= 9 ** 2
    box = np.zeros(SHAPE, bool)
    box[3:8, 6:20, 10:31] = True
    radius = np.hypot(px - 16, py - 14)
    ring = (radius <= 11) & (radius >= 5) & (z >= 2) & (z <= 9)
    pair = np.zeros(SHAPE, bool)             # two lesions, one touching the grid's edge
    pair[4:6, 0:5, 0:6] = True
    pair[5:9, 20:27, 28:36] = True
    chequer = np.zeros(SHAPE, bool)          # voxels touching only at corners
    chequer[6, 10:16, 10:16] = (np.add.outer(np.arange(6), np.arange(6)) % 2) == 0
    return {"sphere": sphere, "box": box, "ring": ring, "pair": pair, "chequer": chequer}


SHAPES = shapes()


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * np.logical_and(a, b).sum() / (a.sum() + b.sum())


def shuffled(files: list[Path]) -> list[Path]:
    return [files[i] for i in np.random.default_rng(1).permutation(len(files))]


def seg_on_grid(path: Path, written: WrittenSeries, spec_: SeriesSpec) -> np.ndarray:
    """The SEG's frames placed on the CT grid by their ImagePositionPatient (pydicom only)."""
    ds = pydicom.dcmread(path)
    frames = ds.pixel_array.reshape(int(ds.NumberOfFrames), int(ds.Rows), int(ds.Columns))
    positions = np.array([spec_.point((0, 0, k)) for k in range(SHAPE[0])])
    volume = np.zeros(SHAPE, np.uint8)
    for frame, item in zip(frames, ds.PerFrameFunctionalGroupsSequence):
        ipp = np.array([float(v) for v in item.PlanePositionSequence[0].ImagePositionPatient])
        (k,) = np.nonzero(np.abs(positions - ipp).max(1) < 1e-3)[0]
        assert item.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID == written.sop_uids[k]
        volume[k] = frame
    return volume


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_dicom_seg_round_trip_is_exact(tmp_path, series, name):
    mask = SHAPES[name]
    path = write_dicom_seg(mask.astype(np.uint8), shuffled(series.written.files), tmp_path / "seg.dcm")
    np.testing.assert_array_equal(seg_on_grid(path, series.written, series.spec), mask)
    # highdicom's own reader agrees
    import highdicom as hd

    seg = hd.seg.segread(path)
    back = seg.get_pixels_by_source_instance(source_sop_instance_uids=series.written.sop_uids, segment_numbers=[1])
    np.testing.assert_array_equal(back[..., 0], mask)


def test_dicom_seg_references_the_series(tmp_path, series):
    mask = SHAPES["sphere"]
    path = write_dicom_seg(mask, series.written.files, tmp_path / "seg.dcm", segment_label="GTV-1",
                           algorithm_version="9.9")
    ds = pydicom.dcmread(path)
    w = series.written
    assert ds.SOPClassUID == SEG_STORAGE and ds.Modality == "SEG" and ds.SegmentationType == "BINARY"
    assert (ds.StudyInstanceUID, ds.FrameOfReferenceUID, ds.PatientID) == (w.study_uid, w.frame_uid, "OUT001")
    assert ds.SeriesInstanceUID != w.series_uid
    (ref,) = ds.ReferencedSeriesSequence
    assert ref.SeriesInstanceUID == w.series_uid
    tumour_slices = {w.sop_uids[k] for k in np.nonzero(mask.any((1, 2)))[0]}
    assert {r.ReferencedSOPInstanceUID for r in ref.ReferencedInstanceSequence} >= tumour_slices
    (segment,) = ds.SegmentSequence
    assert segment.SegmentLabel == "GTV-1" and segment.SegmentAlgorithmType == "AUTOMATIC"
    assert segment.SegmentedPropertyTypeCodeSequence[0].CodeValue == "108369006"  # SNOMED CT Neoplasm
    assert segment.SegmentationAlgorithmIdentificationSequence[0].AlgorithmVersion == "9.9"
    assert int(ds.NumberOfFrames) == len(tumour_slices)  # empty slices left out


def test_dicom_seg_of_empty_mask(tmp_path, series):
    path = write_dicom_seg(np.zeros(SHAPE, np.uint8), series.written.files, tmp_path / "seg.dcm")
    assert not seg_on_grid(path, series.written, series.spec).any()
    assert int(pydicom.dcmread(path).NumberOfFrames) == SHAPE[0]


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_rtstruct_rasterises_back_to_the_mask(tmp_path, series, name):
    """Marching-squares outlines lie halfway between tumour and background voxel centres, so filling
    the voxel centres inside them (XOR per slice) recovers the mask voxel for voxel: Dice 1.0."""
    mask = SHAPES[name]
    path = write_rtstruct(mask, shuffled(series.written.files), tmp_path / "rt.dcm", roi_name="Tumour")
    back = rasterise_rtstruct(path, series.image, "tumour")
    assert back.off_plane == 0 and back.outside == 0
    assert dice(back.mask.astype(bool), mask) == 1.0
    np.testing.assert_array_equal(back.mask, mask)


@pytest.mark.parametrize("name", ["sphere", "ring", "chequer"])
def test_rtstruct_vertices_lie_halfway_between_tumour_and_background(tmp_path, series, name):
    """Each vertex, in voxel indices, is the midpoint of a tumour and a background voxel centre that
    are neighbours along x or y: one coordinate whole, the other a half, the two centres differing."""
    mask = SHAPES[name]
    ds = pydicom.dcmread(write_rtstruct(mask, series.written.files, tmp_path / "rt.dcm"))
    s = series.spec
    to_index = np.linalg.inv(s.direction * np.asarray(s.spacing))  # index = inv(D diag(spacing)) (p - origin)
    padded = np.pad(mask, 1)
    n = 0
    for c in ds.ROIContourSequence[0].ContourSequence:
        index = (to_index @ (np.asarray(c.ContourData, float).reshape(-1, 3) - s.origin).T).T
        assert np.abs(index[:, 2] - np.rint(index[:, 2])).max() < 1e-3
        for x, y, z in index:
            half_x = abs(x - np.floor(x) - 0.5) < 2e-3
            assert half_x != (abs(y - np.floor(y) - 0.5) < 2e-3)  # exactly one coordinate is a half
            a = (int(np.rint(z)), int(np.floor(y)) if not half_x else int(np.rint(y)),
                 int(np.floor(x)) if half_x else int(np.rint(x)))
            b = (a[0], a[1] + (not half_x), a[2] + half_x)
            assert padded[a[0] + 1, a[1] + 1, a[2] + 1] != padded[b[0] + 1, b[1] + 1, b[2] + 1]
            n += 1
    assert n > 20


def test_rtstruct_ring_has_a_hole_contour(tmp_path, series):
    path = write_rtstruct(SHAPES["ring"], series.written.files, tmp_path / "rt.dcm")
    ds = pydicom.dcmread(path)
    per_slice: dict[str, int] = {}
    for c in ds.ROIContourSequence[0].ContourSequence:
        uid = c.ContourImageSequence[0].ReferencedSOPInstanceUID
        per_slice[uid] = per_slice.get(uid, 0) + 1
    assert set(per_slice.values()) == {2}  # outer outline and hole outline on each slice
    assert len(per_slice) == 8


def test_rtstruct_references_the_series(tmp_path, series):
    w = series.written
    mask = SHAPES["pair"]
    path = write_rtstruct(mask, w.files, tmp_path / "rt.dcm", roi_name="GTV-auto")
    ds = pydicom.dcmread(path)
    assert ds.Modality == "RTSTRUCT" and ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.481.3"
    assert (ds.StudyInstanceUID, ds.FrameOfReferenceUID, ds.PatientID) == (w.study_uid, w.frame_uid, "OUT001")
    (frame,) = ds.ReferencedFrameOfReferenceSequence
    (study,) = frame.RTReferencedStudySequence
    (ref_series,) = study.RTReferencedSeriesSequence
    assert frame.FrameOfReferenceUID == w.frame_uid and study.ReferencedSOPInstanceUID == w.study_uid
    assert ref_series.SeriesInstanceUID == w.series_uid
    assert [r.ReferencedSOPInstanceUID for r in ref_series.ContourImageSequence] == w.sop_uids
    (roi,) = ds.StructureSetROISequence
    assert roi.ROIName == "GTV-auto" and roi.ReferencedFrameOfReferenceUID == w.frame_uid
    # every contour lies in the plane of the slice it references
    normal = series.spec.direction[:, 2]
    for c in ds.ROIContourSequence[0].ContourSequence:
        points = np.asarray(c.ContourData, float).reshape(-1, 3)
        k = w.sop_uids.index(c.ContourImageSequence[0].ReferencedSOPInstanceUID)
        assert np.abs((points - series.spec.point((0, 0, k))) @ normal).max() < 1e-3
        assert mask[k].any()
    assert ds.ApprovalStatus == "UNAPPROVED"


def test_rtstruct_of_empty_mask(tmp_path, series):
    path = write_rtstruct(np.zeros(SHAPE, bool), series.written.files, tmp_path / "rt.dcm")
    ds = pydicom.dcmread(path)
    assert "ContourSequence" not in ds.ROIContourSequence[0]
    assert ds.StructureSetROISequence[0].ROIName == "Tumour"


WRITERS = [pytest.param(write_dicom_seg, id="seg"), pytest.param(write_rtstruct, id="rtstruct")]


@pytest.mark.parametrize("writer", WRITERS)
def test_mask_of_another_shape_is_rejected(tmp_path, series, writer):
    with pytest.raises(InputError, match=r"shape \(z, y, x\) \(12, 32, 39\)"):
        writer(np.zeros((12, 32, 39), np.uint8), series.written.files, tmp_path / "out.dcm")
    assert not list(tmp_path.iterdir())  # nothing written


@pytest.mark.parametrize("writer", WRITERS)
def test_files_that_are_not_one_ct_series_are_rejected(tmp_path, series, writer):
    pet = write_series(tmp_path / "pet", spec(modality="PT", sop_class=PET_STORAGE), np.random.default_rng(3))
    other = write_series(tmp_path / "ct2", spec(), np.random.default_rng(4))
    text = tmp_path / "notes.txt"
    text.write_text("not DICOM")
    mask = np.zeros(SHAPE, np.uint8)
    out = tmp_path / "out.dcm"
    with pytest.raises(InputError, match="not a CT volume.*PET"):
        writer(mask, pet.files, out)
    with pytest.raises(InputError, match="belong to 2 series"):
        writer(mask, series.written.files + other.files[:1], out)
    with pytest.raises(InputError, match="notes.txt is not a readable DICOM"):
        writer(mask, [*series.written.files, text], out)
    with pytest.raises(InputError, match="slice spacing is not uniform"):
        writer(mask, series.written.files[:5] + series.written.files[6:], out)
    with pytest.raises(InputError, match="no CT files"):
        writer(mask, [], out)
    assert not out.exists()
