"""DICOM reading, RTSTRUCT rasterisation and the NSCLC-Radiomics / Lung-PET-CT-Dx converters, on
synthetic DICOM written with pydicom in the real formats (see nnunet_ts.synth.dicom_export)."""
import json

import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_ts.dataset_conversion.common import ConversionOptions
from nnunet_ts.errors import InputError
from nnunet_ts.io.dicom import ct_exclusion_reason, discover_series, rasterise_rtstruct, read_ct
from nnunet_ts.io.images import read_image
from nnunet_ts.synth.dicom_export import (
    PET_STORAGE,
    SeriesSpec,
    ellipse_contours,
    rotation,
    write_rtstruct,
    write_secondary_capture,
    write_series,
    write_voc,
)

SHAPE = (16, 40, 48)  # z, y, x


def ct_spec(rng, patient="P001", shape=SHAPE, spacing=(0.8, 0.9, 2.5), slope=2.0, **kw) -> SeriesSpec:
    hu = 2 * rng.integers(-500, 300, size=shape) - 24  # even offsets from -1024: exact with slope 2
    return SeriesSpec(hu=hu.astype(float), spacing=spacing, origin=(-120.5, 33.25, -410.0),
                      direction=rotation(), slope=slope, intercept=-1024.0, patient_id=patient, **kw)


def sitk_reference(folder):
    """SimpleITK's own reading of a DICOM folder (GDCM sorts the files)."""
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    return reader.Execute()


def assert_same_geometry(a, b, atol=1e-9):
    """Equal grids. NIfTI stores the direction as a float32 quaternion: files match to ~1e-7."""
    assert a.GetSize() == b.GetSize()
    np.testing.assert_allclose(a.GetSpacing(), b.GetSpacing(), atol=atol)
    np.testing.assert_allclose(a.GetOrigin(), b.GetOrigin(), atol=atol)
    np.testing.assert_allclose(a.GetDirection(), b.GetDirection(), atol=atol)


def dice(a, b):
    a, b = np.asarray(a) > 0, np.asarray(b) > 0
    return 2 * np.logical_and(a, b).sum() / (a.sum() + b.sum())


def test_ct_series_matches_simpleitk_geometry_and_rescaled_hu(tmp_path):
    rng = np.random.default_rng(0)
    spec = ct_spec(rng)
    write_series(tmp_path / "ct", spec, rng)
    [series] = discover_series(tmp_path)
    image = read_ct(series)
    reference = sitk_reference(tmp_path / "ct")
    assert_same_geometry(image, reference)
    np.testing.assert_allclose(image.GetDirection(), spec.direction.reshape(-1), atol=1e-7)
    np.testing.assert_allclose(image.GetOrigin(), spec.origin, atol=1e-5)
    assert np.array_equal(sitk.GetArrayFromImage(image), spec.hu)  # slope 2, intercept -1024 applied
    assert np.array_equal(sitk.GetArrayFromImage(image), sitk.GetArrayFromImage(reference))


def test_rtstruct_contours_rasterise_onto_the_ct_grid(tmp_path):
    rng = np.random.default_rng(1)
    spec = ct_spec(rng)
    ct = write_series(tmp_path / "ct", spec, rng)
    contours, truth = ellipse_contours(spec, (22.3, 19.6, 7.4), (13.0, 9.5, 5.2))
    write_rtstruct(tmp_path / "rt" / "rt.dcm", ct, spec, {"Lung-Right": contours[:2], "GTV-1": contours})
    image = read_ct(next(s for s in discover_series(tmp_path) if s.modality == "CT"))
    roi = rasterise_rtstruct(tmp_path / "rt" / "rt.dcm", image, r"GTV[-_ ]?1")
    assert roi.roi_names == ("GTV-1",) and roi.off_plane == 0 and roi.outside == 0
    assert dice(roi.mask, truth) >= 0.98
    # a contour inside another on the same slice cuts a hole (XOR), as RTSTRUCT holes are drawn
    outer, _ = ellipse_contours(spec, (24.0, 20.0, 8.0), (12.0, 10.0, 1.0))
    inner, _ = ellipse_contours(spec, (24.0, 20.0, 8.0), (5.0, 4.0, 1.0))
    write_rtstruct(tmp_path / "rt2" / "rt.dcm", ct, spec, {"GTV-ring": outer + inner})
    ring = rasterise_rtstruct(tmp_path / "rt2" / "rt.dcm", image, "gtv-RING").mask
    assert ring[8, 20, 24] == 0 and ring[8, 20, 33] == 1 and ring[8, 20, 38] == 0 and ring[7].sum() == 0
    with pytest.raises(InputError, match=r"no ROI matching .*\(ROIs: 'Lung-Right', 'GTV-1'\)"):
        rasterise_rtstruct(tmp_path / "rt" / "rt.dcm", image, "GTV-2")


def test_nsclc_conversion_keeps_rasterised_cases_and_reports_failures(tmp_path):
    from nnunet_ts.dataset_conversion.nsclc import convert_nsclc_radiomics

    rng = np.random.default_rng(2)
    src, truths, specs = tmp_path / "NSCLC-Radiomics", {}, {}
    for i, patient in enumerate(["LUNG1-001", "LUNG1-002", "LUNG1-003", "LUNG1-004"]):
        spec = ct_spec(rng, patient)
        ct = write_series(src / patient / "study" / "ct", spec, rng)
        contours, truth = ellipse_contours(spec, (20 + i, 18.5, 7.0 + 0.3 * i), (10.0 + i, 8.0, 4.5))
        roi = "GTV-2" if patient == "LUNG1-003" else "GTV-1"  # 003 has no primary GTV
        write_rtstruct(src / patient / "study" / "rt" / "1-1.dcm", ct, spec, {roi: contours, "Heart": contours[:1]})
        truths[patient], specs[patient] = truth, spec
    write_series(src / "LUNG1-005" / "study" / "ct", ct_spec(rng, "LUNG1-005"), rng)  # no RTSTRUCT

    raw = tmp_path / "raw"
    report = convert_nsclc_radiomics(src, raw, ConversionOptions(dataset_id=610, name="NSCLC", test_fraction=0.0,
                                                                 num_folds=2), progress=False)
    assert report["kept"] == 3 and report["subsets"] == {"strong": 3}
    dropped = {d["source"]: d["reason"] for d in report["dropped_items"]}
    assert any("LUNG1-003" in s and "no ROI matching" in r and "'GTV-2'" in r for s, r in dropped.items())
    assert any("no RTSTRUCT references this CT" in r for r in dropped.values())
    cohort = raw / "cohorts" / "nsclc"
    assert json.loads((cohort / "conversion_report.json").read_text())["dropped"] == 2
    for patient in ("LUNG1-001", "LUNG1-002", "LUNG1-004"):
        ct, geometry = read_image(cohort / f"nsclc_{patient}_ct.nii.gz")
        reference = sitk_reference(src / patient / "study" / "ct")
        assert_same_geometry(sitk.ReadImage(str(cohort / f"nsclc_{patient}_ct.nii.gz")), reference, atol=1e-6)
        assert np.array_equal(ct, specs[patient].hu)
        mask, _ = read_image(cohort / f"nsclc_{patient}_mask.nii.gz")
        assert dice(mask, truths[patient]) >= 0.98
    teacher, student = raw / "Dataset610_NSCLCTeacher", raw / "Dataset611_NSCLCStudent"
    assert len(list((teacher / "imagesTr").glob("*_0001.nii.gz"))) == 3
    assert len(json.loads((student / "splits_final.json").read_text())) == 2
    assert report["datasets"]["weak"].startswith("skipped")
    # rerunnable: the same command again needs --overwrite and gives the same cohort
    with pytest.raises(InputError, match="--overwrite"):
        convert_nsclc_radiomics(src, raw, ConversionOptions(dataset_id=610, name="NSCLC"), progress=False)


def test_lungdx_keeps_annotated_ct_only_and_places_boxes(tmp_path):
    from nnunet_ts.dataset_conversion.lungdx import convert_lung_pet_ct_dx

    rng = np.random.default_rng(3)
    src = tmp_path / "Lung-PET-CT-Dx"
    spacing = (0.8, 0.9, 5.0)  # 40 slices x 5 mm = 20 cm: kept
    expected = {}
    for patient in ("A0001", "A0002"):
        spec = ct_spec(rng, patient, shape=(40, 40, 48), spacing=spacing, slope=1.0)
        # bright markers where the reader drew boxes: two lesions on slice 11, one on slice 30
        marks = {11: [(5, 6, 12, 10), (30, 20, 40, 31)], 30: [(8, 25, 15, 33)]}  # VOC x0, y0, x1, y1 (1-based)
        for z, boxes in marks.items():
            for x0, y0, x1, y1 in boxes:
                spec.hu[z, y0 - 1:y1, x0 - 1:x1] = 1000
        ct = write_series(src / f"Lung_Dx-{patient}" / "study" / "ct", spec, rng)
        for z, boxes in marks.items():
            write_voc(src / "Annotation" / patient / f"{ct.sop_uids[z]}.xml", ct.sop_uids[z], boxes, 48, 40)
        expected[patient] = spec.hu == 1000
    a = src / "Lung_Dx-A0001" / "study"
    pet = ct_spec(rng, "A0001", shape=(40, 8, 8), spacing=(4.0, 4.0, 5.0), slope=1.0, modality="PT",
                  sop_class=PET_STORAGE, description="PET WB")
    write_series(a / "pet", pet, rng)
    fused = ct_spec(rng, "A0001", shape=(40, 8, 8), spacing=(4.0, 4.0, 5.0), slope=1.0, description="Fused PET/CT",
                    image_type=("DERIVED", "SECONDARY", "FUSED"))
    write_series(a / "fused", fused, rng)
    write_secondary_capture(a / "sc", "A0001", "1.2.3")
    short = ct_spec(rng, "A0002", shape=(10, 8, 8), spacing=(1.0, 1.0, 5.0), slope=1.0)  # 5 cm: dropped
    write_series(src / "Lung_Dx-A0002" / "study" / "short", short, rng)

    reasons = sorted(filter(None, (ct_exclusion_reason(s) for s in discover_series(src))))
    assert reasons == sorted(["fused PET/CT", "not CT (PET)", "not CT (OT)"])

    raw = tmp_path / "raw"
    report = convert_lung_pet_ct_dx(src, raw, ConversionOptions(dataset_id=620, name="LungDx", workers=2),
                                    progress=False)  # two processes: the pool path works
    assert report["kept"] == 2 and report["subsets"] == {"weak": 2}
    why = sorted(d["reason"] for d in report["dropped_items"])
    assert len(why) == 4 and "z-extent 5.0 cm outside [16, 60] cm" in why
    assert {"fused PET/CT", "not CT (PET)", "not CT (OT)"} <= set(why)
    assert report["datasets"]["teacher"].startswith("skipped")
    weak = raw / "Dataset622_LungDxWeak" / "imagesTs"
    for patient in ("A0001", "A0002"):
        segbox, _ = read_image(weak / f"lungdx_{patient}_1_0001.nii.gz")
        ct, _ = read_image(weak / f"lungdx_{patient}_1_0000.nii.gz")
        assert np.array_equal(segbox > 0, expected[patient])  # right slices, right pixels
        assert (ct[segbox > 0] == 1000).all()


def test_predict_input_picks_the_one_ct_series_or_asks_for_its_uid(tmp_path):
    from nnunet_ts.inference.predict import read_ct_input

    rng = np.random.default_rng(4)
    small = dict(shape=(4, 8, 8), slope=1.0)
    first = write_series(tmp_path / "a", ct_spec(rng, **small), rng)
    write_series(tmp_path / "pet", ct_spec(rng, modality="PT", sop_class=PET_STORAGE, **small), rng)
    assert read_ct_input(tmp_path).GetSize() == (8, 8, 4)  # the PET series does not count
    write_series(tmp_path / "b", ct_spec(rng, **small), rng)
    with pytest.raises(InputError, match="holds 2 CT series: .*pass --series-uid"):
        read_ct_input(tmp_path)
    image = read_ct_input(tmp_path, series_uid=first.series_uid)
    assert_same_geometry(image, sitk_reference(tmp_path / "a"))
    with pytest.raises(InputError, match="neither a DICOM folder nor an image file"):
        read_ct_input(tmp_path / "a" / "x.dcm")
