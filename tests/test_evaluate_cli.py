"""Folder evaluation and ``nnunet_ts evaluate`` end to end on small NIfTI files in tmp_path.

Grid: shape (z, y, x) = (10, 12, 12), spacing (x, y, z) = (1, 1, 2) mm, so 1 voxel = 2 mm^3 and a
4 x 4 x 4 cube (64 voxels) is 128 mm^3, above the 100 mm^3 minimum.
"""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from nnunet_ts.cli.main import main
from nnunet_ts.errors import InputError
from nnunet_ts.evaluation.folder import PER_CASE_NAME, SUMMARY_NAME, evaluate_folders
from nnunet_ts.io.images import Geometry, write_image

SHAPE = (10, 12, 12)
GEOMETRY = Geometry(shape_zyx=SHAPE, spacing=(1.0, 1.0, 2.0), origin=(0.0, 0.0, 0.0),
                    direction=(1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0))


def cube(z, y, x, size=4, base=None, value=1, dtype=np.uint8):
    out = np.zeros(SHAPE, dtype) if base is None else base.copy()
    out[z:z + size, y:y + size, x:x + size] = value
    return out


LESION_1 = cube(0, 0, 0)
BOTH = cube(6, 8, 8, base=LESION_1)  # two lesions of 64 voxels


@pytest.fixture
def folders(tmp_path):
    """case_a: perfect; case_b: the second of two lesions missed (float probability map)."""
    pred, gt = tmp_path / "pred", tmp_path / "gt"
    pred.mkdir()
    gt.mkdir()
    write_image(gt / "case_a.nii.gz", LESION_1, GEOMETRY)
    write_image(pred / "case_a.nii.gz", LESION_1, GEOMETRY)
    write_image(gt / "case_b.nii.gz", BOTH, GEOMETRY)
    write_image(pred / "case_b.nii.gz", cube(0, 0, 0, value=0.75, dtype=np.float32), GEOMETRY)
    (pred / "plans.json").write_text("{}")  # nnU-Net leaves such files; they must be ignored
    return pred, gt


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_evaluate_folders_writes_csv_and_json(folders, tmp_path):
    pred, gt = folders
    summary = evaluate_folders(pred, gt, tmp_path / "out", progress=False)
    rows = read_csv(tmp_path / "out" / PER_CASE_NAME)
    assert [r["case_id"] for r in rows] == ["case_a", "case_b"]
    a, b = rows
    assert float(a["dsc"]) == 1.0 and float(a["f1"]) == 1.0 and a["prediction_missing"] == "False"
    # case_b: DSC 2*64 / (64 + 128); recall 1/2; F1 2*1*0.5/1.5; volumes 64 * 2 mm^3, 128 * 2.
    assert float(b["dsc"]) == pytest.approx(2 / 3)
    assert float(b["dsc_tp"]) == 1.0
    assert (float(b["precision"]), float(b["recall"])) == (1.0, 0.5)
    assert float(b["f1"]) == pytest.approx(2 / 3)
    assert (b["tp"], b["fp"], b["fn"], b["n_gt_lesions"], b["n_pred_lesions"]) == ("1", "0", "1", "2", "1")
    assert (float(b["gt_volume_mm3"]), float(b["pred_volume_mm3"])) == (256.0, 128.0)

    on_disk = json.loads((tmp_path / "out" / SUMMARY_NAME).read_text())
    assert on_disk["settings"] == dict(threshold=0.5, min_lesion_mm3=100.0, overlap=0.25,
                                       connectivity=26, largest_component=False)
    assert on_disk["metrics"]["dsc"] == pytest.approx(
        {"mean": 5 / 6, "std": 1 / 6, "median": 5 / 6, "n": 2})
    assert on_disk["metrics"]["recall"]["mean"] == 0.75
    assert on_disk["pooled"] == {"tp": 2, "fp": 0, "fn": 1}
    assert on_disk["n_cases"] == 2 and on_disk["missing_predictions"] == []
    assert on_disk["metrics"] == summary["metrics"]
    assert not list((tmp_path / "out").glob(".*.tmp"))  # no temp files left behind


def test_default_out_is_pred_dir_and_settings_are_recorded(folders):
    pred, gt = folders
    evaluate_folders(pred, gt, overlap=0.5, largest_component=True, progress=False)
    summary = json.loads((pred / SUMMARY_NAME).read_text())
    assert summary["settings"]["overlap"] == 0.5 and summary["settings"]["largest_component"]
    assert (pred / PER_CASE_NAME).is_file()


def test_cli_prints_table_and_writes_files(folders, tmp_path, capsys):
    pred, gt = folders
    out = tmp_path / "res"
    assert main(["evaluate", "--pred", str(pred), "--gt", str(gt), "--out", str(out)]) == 0
    stdout = capsys.readouterr().out
    assert "0.8333 ± 0.1667" in stdout  # dsc mean ± population std
    assert "pooled lesions TP 2, FP 0, FN 1" in stdout
    assert json.loads((out / SUMMARY_NAME).read_text())["n_cases"] == 2


def test_cli_threshold_applies_to_probability_maps(folders, tmp_path):
    pred, gt = folders
    out = tmp_path / "res"
    assert main(["evaluate", "--pred", str(pred), "--gt", str(gt), "--out", str(out),
                 "--threshold", "0.8"]) == 0
    rows = {r["case_id"]: r for r in read_csv(out / PER_CASE_NAME)}
    assert float(rows["case_b"]["dsc"]) == 0.0  # 0.75 < 0.8: empty prediction
    assert rows["case_b"]["dsc_tp"] == "nan"
    assert float(rows["case_a"]["dsc"]) == 1.0  # label map: threshold does not apply


def test_refuses_to_overwrite(folders, tmp_path, capsys):
    pred, gt = folders
    args = ["evaluate", "--pred", str(pred), "--gt", str(gt), "--out", str(tmp_path / "res")]
    assert main(args) == 0
    before = (tmp_path / "res" / PER_CASE_NAME).read_text()
    capsys.readouterr()
    assert main(args + ["--threshold", "0.8"]) == 3
    err = capsys.readouterr().err
    assert "already exist" in err and "--overwrite" in err
    assert (tmp_path / "res" / PER_CASE_NAME).read_text() == before
    assert main(args + ["--threshold", "0.8", "--overwrite"]) == 0
    assert (tmp_path / "res" / PER_CASE_NAME).read_text() != before


def test_geometry_mismatch_names_both_files(folders, capsys):
    pred, gt = folders
    shifted = Geometry(SHAPE, spacing=(1.0, 1.0, 3.0), origin=GEOMETRY.origin,
                       direction=GEOMETRY.direction)
    write_image(pred / "case_b.nii.gz", BOTH, shifted)
    assert main(["evaluate", "--pred", str(pred), "--gt", str(gt)]) == 3
    err = capsys.readouterr().err
    assert str(pred / "case_b.nii.gz") in err and str(gt / "case_b.nii.gz") in err
    assert "spacing" in err
    assert not (pred / SUMMARY_NAME).exists()


def test_missing_prediction_is_an_error_unless_allowed(folders, tmp_path, capsys):
    pred, gt = folders
    write_image(gt / "case_c.nii.gz", BOTH, GEOMETRY)
    assert main(["evaluate", "--pred", str(pred), "--gt", str(gt)]) == 3
    err = capsys.readouterr().err
    assert "case_c" in err and "--allow-missing" in err and "case_a" not in err
    out = tmp_path / "res"
    assert main(["evaluate", "--pred", str(pred), "--gt", str(gt), "--out", str(out),
                 "--allow-missing"]) == 0
    rows = {r["case_id"]: r for r in read_csv(out / PER_CASE_NAME)}
    c = rows["case_c"]
    assert (float(c["dsc"]), float(c["recall"]), c["fn"], c["prediction_missing"]) == (0.0, 0.0, "2", "True")
    assert c["precision"] == "nan"  # nothing predicted: no precision (not 1.0)
    summary = json.loads((out / SUMMARY_NAME).read_text())
    assert summary["missing_predictions"] == ["case_c"]
    assert summary["metrics"]["precision"]["n"] == 2 and summary["metrics"]["f1"]["n"] == 3


def test_prediction_without_ground_truth_is_an_error(folders, capsys):
    pred, gt = folders
    write_image(pred / "case_z.nii.gz", BOTH, GEOMETRY)
    assert main(["evaluate", "--pred", str(pred), "--gt", str(gt), "--allow-missing"]) == 3
    err = capsys.readouterr().err
    assert str(pred / "case_z.nii.gz") in err and "no ground truth" in err


def test_corrupt_file_is_an_error(folders, capsys):
    pred, gt = folders
    (pred / "case_a.nii.gz").write_bytes(b"this is not a NIfTI file" * 10)
    assert main(["evaluate", "--pred", str(pred), "--gt", str(gt)]) == 3
    last_line = capsys.readouterr().err.strip().splitlines()[-1]  # above it: the progress bar
    assert last_line.startswith("nnunet_ts evaluate: error: prediction")
    assert str(pred / "case_a.nii.gz") in last_line and "cannot be read" in last_line


@pytest.mark.parametrize("pred_name, gt_name, match", [
    ("nowhere", "gt", "prediction folder .* does not exist"),
    ("pred", "nowhere", "ground-truth folder .* does not exist"),
    ("empty", "gt", "has no file ending in '.nii.gz'"),
])
def test_bad_folders(folders, tmp_path, pred_name, gt_name, match):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match=match):
        evaluate_folders(tmp_path / pred_name, tmp_path / gt_name, tmp_path / "res", progress=False)


@pytest.mark.parametrize("option, value, message", [
    ("--overlap", "0", "must be a finite number in (0, 1]"),
    ("--overlap", "1.5", "must be a finite number in (0, 1]"),
    ("--threshold", "1", "must be a finite number in (0, 1)"),
    ("--min-lesion-mm3", "-5", "must be a finite number in [0, inf]"),
    ("--connectivity", "8", "invalid choice"),
    ("--overlap", "a lot", "is not a number"),
])
def test_cli_rejects_bad_settings(folders, capsys, option, value, message):
    pred, gt = folders
    with pytest.raises(SystemExit) as exit_info:
        main(["evaluate", "--pred", str(pred), "--gt", str(gt), option, value])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert option in err and message in err


def test_help_documents_the_definitions(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["evaluate", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for needle in ("DSC-TP", "TP / (TP + FP)", "1.0 when both are", "--min-lesion-mm3",
                   "population std", "default: 0.25", "--allow-missing", "largest 3D connected"):
        assert needle in text, needle
