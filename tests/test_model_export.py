"""A trained CT-only model (the session's ``ct_model``), exported with ``nnunet_ts model export``, installed
into a fresh nnUNet_results, segments a folder of DICOM series and writes every clinical output."""
import json
import zipfile

import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_ts.cli.main import main
from nnunet_ts.synth import SynthConfig, generate_case
from nnunet_ts.synth.dicom_export import SeriesSpec, rotation, write_secondary_capture, write_series
from tests.factories.stock import requires_nnunet

pytestmark = [requires_nnunet, pytest.mark.xdist_group("ct_model")]


def _series(root, patient, seed, direction):
    case = generate_case(seed, SynthConfig.compact((20, 56, 48)))
    spec = SeriesSpec(hu=case.ct.astype(float), spacing=(1.4, 1.6, 2.8), origin=(-37.5, 120.25, -612.0),
                      direction=direction, patient_id=patient)
    return write_series(root / patient / "ct", spec, np.random.default_rng(seed))


def test_exported_model_installed_elsewhere_segments_a_dicom_folder(ct_model, tmp_path, monkeypatch, capsys):
    import highdicom as hd
    import pydicom

    from nnunet_ts.io.dicom import discover_series, rasterise_rtstruct, read_ct

    monkeypatch.delenv("nnUNet_raw", raising=False)
    zip_path = tmp_path / "student.zip"
    assert main(["model", "export", str(ct_model.folder), "-o", str(zip_path)]) == 0
    model_dir = f"{ct_model.dataset}/{ct_model.folder.name}"
    with zipfile.ZipFile(zip_path) as zf:
        names = set(zf.namelist())
        record = json.loads(zf.read(f"{model_dir}/nnunet_ts_model.json"))
    assert {f"{model_dir}/{n}" for n in ("plans.json", "dataset.json", "fold_0/checkpoint_final.pth")} <= names
    assert {k: record[k] for k in ("trainer", "configuration", "channels", "segbox_form", "crop_lungs", "folds")} \
        == {"trainer": "BaselineTrainer", "configuration": "3d_tiny", "channels": ["CT"], "segbox_form": None,
            "crop_lungs": False, "folds": ["0"]}
    results = tmp_path / "elsewhere" / "nnUNet_results"
    assert main(["model", "install", str(zip_path), "--results", str(results)]) == 0
    installed = results / model_dir
    assert main(["model", "install", str(zip_path), "--results", str(results)]) == 2  # no silent replacement

    root = tmp_path / "dicom"
    series = {"P001": _series(root, "P001", 11, rotation(8.0, -20.0)), "P002": _series(root, "P002", 12, np.eye(3))}
    write_secondary_capture(root / "P001" / "screenshot", "P001", series["P001"].study_uid)  # left out, listed
    # a tiny model's probabilities vary from training to training: the threshold is this model's 99.5th
    # percentile, so both masks hold tumour (the probability maps are the folder run with --threshold -1)
    assert main(["predict", str(root), str(tmp_path / "prob"), "-m", str(installed), "--cpu", "--no-mirroring",
                 "--threshold", "-1"]) == 0
    threshold = min(np.quantile(sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "prob" / f"{p}_ct.nii.gz"))),
                                0.995) for p in series)
    threshold = f"{np.floor(threshold * 1e6) / 1e6:.6f}"
    out = tmp_path / "out"
    capsys.readouterr()
    assert main(["predict", str(root), str(out), "-m", str(installed), "--cpu", "--no-mirroring",
                 "--threshold", threshold, "--output-type", "nifti", "dicom-seg", "rtstruct", "--preview"]) == 0
    printed = capsys.readouterr().out
    assert "2 written, 0 skipped (finished earlier), 0 failed" in printed and "screen save" in printed

    cts = {s.patient_id: s for s in discover_series(root) if s.modality == "CT"}
    for patient, written in series.items():
        case = f"{patient}_ct"
        ct = read_ct(cts[patient])
        mask_image = sitk.ReadImage(str(out / f"{case}.nii.gz"))
        assert mask_image.GetSize() == ct.GetSize()
        np.testing.assert_allclose(mask_image.GetDirection(), ct.GetDirection(), atol=1e-6)
        np.testing.assert_allclose(mask_image.GetOrigin(), ct.GetOrigin(), atol=1e-4)
        mask = sitk.GetArrayFromImage(mask_image)
        assert mask.any()

        seg = hd.seg.segread(out / f"{case}_seg.dcm")
        assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == written.series_uid
        frames = seg.get_pixels_by_source_instance(source_sop_instance_uids=written.sop_uids, segment_numbers=[1],
                                                   ignore_spatial_locations=True)
        np.testing.assert_array_equal(frames[..., 0], mask)

        rt = pydicom.dcmread(out / f"{case}_rtstruct.dcm")
        assert rt.Modality == "RTSTRUCT" and rt.StructureSetROISequence[0].ROIName == "Tumour"
        contoured = rasterise_rtstruct(out / f"{case}_rtstruct.dcm", ct, "Tumour").mask
        overlap = 2 * np.count_nonzero(contoured & (mask > 0)) / (np.count_nonzero(contoured) + np.count_nonzero(mask))
        assert overlap > 0.8, overlap  # contours through voxel centres: the outline, rasterised back

        import cc3d

        rows = (out / f"{case}_lesions.csv").read_text().strip().splitlines()
        assert len(rows) - 1 == cc3d.connected_components(mask, connectivity=26, return_N=True)[1]
        assert len(json.loads((out / f"{case}_lesions.json").read_text())["lesions"]) == len(rows) - 1
        assert (out / f"{case}_preview.png").stat().st_size > 10_000

    # rerun: everything is finished, nothing is rewritten
    stamps = {p: p.stat().st_mtime_ns for p in out.iterdir()}
    assert main(["predict", str(root), str(out), "-m", str(installed), "--cpu", "--no-mirroring",
                 "--threshold", threshold, "--output-type", "nifti", "dicom-seg", "rtstruct", "--preview"]) == 0
    assert "0 written, 2 skipped" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in out.iterdir()} == stamps
