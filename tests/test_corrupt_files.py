"""Truncated and corrupt image files: one InputError naming the file, in every format and through
every command that reads images (SimpleITK alone reads a cut .nii/.nii.gz as zeros)."""
import json
import re
import shutil

import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_ts.cli.main import main
from nnunet_ts.errors import EXIT_BAD_INPUT, InputError
from nnunet_ts.io.images import read_header, read_image
from tests.factories.case_factory import write_cases
from tests.factories.stock import MODEL_LOAD_REACHED

SHAPE = (16, 32, 32)  # z, y, x; int16: 32768 bytes of voxels
VOXEL_BYTES = 16 * 32 * 32 * 2
NIFTI_HEADER = 352  # vox_offset of a NIfTI-1 file SimpleITK writes


def _image():
    array = np.random.default_rng(0).integers(-1000, 1000, SHAPE).astype(np.int16)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((1.5, 1.5, 3.0))
    return array, image


def _cut(path, keep):
    data = path.read_bytes()
    path.write_bytes(data[:keep(len(data))])


def _flip(path, at=0.5):
    data = bytearray(path.read_bytes())
    data[int(len(data) * at)] ^= 0xFF
    path.write_bytes(bytes(data))


def _data_file(path):
    """The file holding the voxels: the .mhd's .raw / .zraw, else the image file itself."""
    for suffix in (".raw", ".zraw"):
        if path.with_suffix(suffix).is_file():
            return path.with_suffix(suffix)
    return path


# (id, file name, compressed, damage, the message's detail)
CASES = [
    ("nii.gz-first-3000-bytes", "ct.nii.gz", True, lambda p: _cut(p, lambda n: 3000), r"the gzip stream ends early"),
    ("nii.gz-last-byte-missing", "ct.nii.gz", True, lambda p: _cut(p, lambda n: n - 1), r"the gzip stream ends early"),
    ("nii.gz-bad-crc", "ct.nii.gz", True, _flip, r"bad compressed data: .*"),
    ("nii-half", "ct.nii", False, lambda p: _cut(p, lambda n: 20000),
     rf"the file holds 20000 bytes of the {NIFTI_HEADER + VOXEL_BYTES} its header declares"),
    ("nii-header-only", "ct.nii", False, lambda p: _cut(p, lambda n: 348), r"the file holds 348 bytes"),
    ("nii-cut-header", "ct.nii", False, lambda p: _cut(p, lambda n: 100), r"the NIfTI header cannot be read"),
    ("nrrd-raw-half", "ct.nrrd", False, lambda p: _cut(p, lambda n: n - VOXEL_BYTES // 2),
     rf"the data holds {VOXEL_BYTES // 2} bytes of the {VOXEL_BYTES}"),
    ("nrrd-gzip-cut", "ct.nrrd", True, lambda p: _cut(p, lambda n: n - 100), r"the gzip stream ends early"),
    ("nrrd-gzip-bad-crc", "ct.nrrd", True, lambda p: _flip(p, 0.7), r"bad compressed data"),
    ("mha-raw-cut", "ct.mha", False, lambda p: _cut(p, lambda n: n - 10),
     rf"the data holds {VOXEL_BYTES - 10} bytes of the {VOXEL_BYTES}"),
    ("mha-zlib-cut", "ct.mha", True, lambda p: _cut(p, lambda n: n - 10), r"the compressed data holds"),
    ("mha-zlib-bad-checksum", "ct.mha", True, lambda p: _flip(p, 0.7), r"bad compressed data"),
    ("mhd-raw-file-cut", "ct.mhd", False, lambda p: _cut(_data_file(p), lambda n: n // 4),
     rf"the data holds {VOXEL_BYTES // 4} bytes of the {VOXEL_BYTES}"),
    ("mhd-raw-file-missing", "ct.mhd", False, lambda p: _data_file(p).unlink(), r"its data file .*ct\.raw is missing"),
    ("mhd-zraw-file-cut", "ct.mhd", True, lambda p: _cut(_data_file(p), lambda n: n - 1),
     r"the compressed data holds"),
]


@pytest.mark.parametrize("name, compressed, damage, detail", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
@pytest.mark.xdist_group("ct_model")
def test_damaged_file_raises_one_input_error_naming_it(tmp_path, capsys, name, compressed, damage, detail,
                                                       unloaded_model):
    array, image = _image()
    path = tmp_path / name
    sitk.WriteImage(image, str(path), useCompression=compressed)
    np.testing.assert_array_equal(read_image(path)[0], array)  # the check passes whole files
    damage(path)
    message = rf"CT {path} is truncated or corrupt \({detail}.*\); .*copy or export it again"
    for reader in (read_image, read_header):
        with pytest.raises(InputError, match=rf"^{message}$"):
            reader(path, "CT")
    # the real command (predict reads every one of these formats, before loading a model)
    code, err = _run(capsys, ["predict", str(path), str(tmp_path / "out.nii.gz"), "-m", str(unloaded_model)])
    assert code == EXIT_BAD_INPUT and re.search(rf"^nnunet_ts predict: error: {message}$", err, re.MULTILINE)


def test_simpleitk_alone_reads_a_cut_nifti_as_zeros(tmp_path):
    """Why the check exists: the issue's file (first 3,000 bytes of a .nii.gz) reads without error."""
    _, image = _image()
    path = tmp_path / "ct.nii.gz"
    sitk.WriteImage(image, str(path), useCompression=True)
    _cut(path, lambda n: 3000)
    assert (sitk.GetArrayFromImage(sitk.ReadImage(str(path)))[-1] == 0).all()


def _run(capsys, argv):
    code = main(argv)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


@pytest.fixture
def cases(tmp_path):
    """Hand-made cases (tests/factories/case_factory.py): case_000 strong, its CT cut to 3000 bytes."""
    manifest = write_cases(tmp_path / "cases", n_strong=4, n_weak=2)
    _cut(tmp_path / "cases" / "case_000_ct.nii.gz", lambda n: 3000)
    return manifest.parent


@pytest.mark.parametrize("kind", ["teacher", "student"])
def test_dataset_refuses_a_cut_ct_and_writes_nothing(tmp_path, cases, capsys, kind):
    raw = tmp_path / "raw"
    code, err = _run(capsys, ["dataset", kind, "--cases", str(cases), "-d", "950", "-n", "Cut",
                              "--raw", str(raw), "--folds", "2"])
    assert code == EXIT_BAD_INPUT
    assert f"\nnnunet_ts dataset: error: CT {cases / 'case_000_ct.nii.gz'} is truncated or corrupt" in err
    assert not raw.exists() or not any(p.name.startswith("Dataset950") for p in raw.iterdir())


def test_dataset_refuses_a_cut_mask(tmp_path, capsys):
    manifest = write_cases(tmp_path / "cases", n_strong=4, n_weak=0)
    mask = tmp_path / "cases" / "case_002_mask.nii.gz"
    _cut(mask, lambda n: n - 4)  # only the gzip trailer (CRC, length) is missing
    code, err = _run(capsys, ["dataset", "teacher", "--cases", str(manifest), "-d", "951", "-n", "Cut",
                              "--raw", str(tmp_path / "raw"), "--folds", "2"])
    assert code == EXIT_BAD_INPUT and f"mask {mask} is truncated or corrupt" in err


def test_evaluate_refuses_a_cut_prediction(tmp_path, capsys):
    pred, gt = tmp_path / "pred", tmp_path / "gt"
    write_cases(tmp_path / "cases", n_strong=2, n_weak=0)
    for folder in (pred, gt):
        folder.mkdir()
        for i in range(2):
            shutil.copy(tmp_path / "cases" / f"case_{i:03d}_mask.nii.gz", folder / f"case_{i:03d}.nii.gz")
    _cut(pred / "case_001.nii.gz", lambda n: n // 2)
    code, err = _run(capsys, ["evaluate", "--pred", str(pred), "--gt", str(gt)])
    assert code == EXIT_BAD_INPUT and f"prediction {pred / 'case_001.nii.gz'} is truncated or corrupt" in err


@pytest.mark.xdist_group("ct_model")
def test_predict_refuses_a_cut_ct_before_loading_the_model(tmp_path, capsys, unloaded_model):
    write_cases(tmp_path / "cases", n_strong=1, n_weak=0)
    ct = tmp_path / "cases" / "case_000_ct.nii.gz"
    _cut(ct, lambda n: 3000)
    code, err = _run(capsys, ["predict", str(ct), str(tmp_path / "out.nii.gz"), "-m", str(unloaded_model)])
    assert code == EXIT_BAD_INPUT and f"CT {ct} is truncated or corrupt" in err and MODEL_LOAD_REACHED not in err
    assert not (tmp_path / "out.nii.gz").exists()


def test_convert_msd_drops_a_cut_image_and_says_why(tmp_path, capsys):
    src = tmp_path / "Task06_Lung"
    for folder in ("imagesTr", "labelsTr"):
        (src / folder).mkdir(parents=True)
    _, image = _image()
    for i in range(3):
        sitk.WriteImage(image, str(src / "imagesTr" / f"lung_{i:03d}.nii.gz"))
        sitk.WriteImage(sitk.Cast(image > 500, sitk.sitkUInt8), str(src / "labelsTr" / f"lung_{i:03d}.nii.gz"))
    cut = src / "imagesTr" / "lung_001.nii.gz"
    _cut(cut, lambda n: 3000)
    raw = tmp_path / "raw"
    code, _ = _run(capsys, ["convert", "msd", str(src), "--out", str(raw), "-d", "952", "--test-fraction", "0"])
    report = json.loads((raw / "cohorts" / "msd" / "conversion_report.json").read_text())
    assert code == 0 and report["kept"] == 2
    [dropped] = report["dropped_items"]
    assert dropped["source"] == "imagesTr/lung_001.nii.gz"
    assert dropped["reason"].startswith(f"CT {cut} is truncated or corrupt")
    assert report["dropped_by_reason"] == {"CT <file> is truncated or corrupt (the gzip stream ends early)": 1}
    assert not (raw / "cohorts" / "msd" / "msd_lung_001_ct.nii.gz").exists()
    # every image of a cut case is refused: nothing to convert is an error, not an empty dataset
    for i in (0, 2):
        _cut(src / "imagesTr" / f"lung_{i:03d}.nii.gz", lambda n: 3000)
    code, err = _run(capsys, ["convert", "msd", str(src), "--out", str(tmp_path / "raw2"), "-d", "955"])
    assert code == EXIT_BAD_INPUT and "no case of" in err and "is truncated or corrupt" in err


@pytest.mark.xdist_group("box_teacher_model")
def test_pseudolabel_refuses_a_cut_weak_ct(box_teacher_model, in_root, tmp_path, capsys):
    env = in_root(box_teacher_model.root)
    weak = tmp_path / "weak"
    shutil.copytree(env / "nnUNet_raw" / "Dataset913_W", weak)
    ct = weak / "imagesTs" / "case_008_0000.nii.gz"
    _cut(ct, lambda n: 3000)
    code, err = _run(capsys, ["pseudolabel", "--teacher", str(box_teacher_model.folder), "--folds", "0",
                              "--weak", str(weak), "--strong", "912", "-d", "953", "-n", "Cut", "--device", "cpu"])
    assert code == EXIT_BAD_INPUT and f"CT {ct} is truncated or corrupt" in err
    assert not any(p.name.startswith((".Dataset953", "Dataset953")) for p in (env / "nnUNet_raw").iterdir())
    assert json.loads((env / "nnUNet_raw" / "Dataset913_W" / "dataset.json").read_text())  # source untouched


def test_a_settled_file_is_verified_once_per_process_and_again_once_it_changes(tmp_path, monkeypatch):
    import os

    from nnunet_ts.io import image_files

    path = tmp_path / "ct.nii.gz"
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((4, 5, 6), np.int16)), str(path), useCompression=True)
    calls = []
    real = image_files._verify_nifti
    monkeypatch.setattr(image_files, "_verify_nifti", lambda p: (calls.append(p), real(p)))
    read_image(path)
    read_image(path)
    assert len(calls) == 2                      # just written: not remembered (its time may not have moved yet)
    old = path.stat().st_mtime_ns - 10 ** 10
    os.utime(path, ns=(old, old))
    read_image(path)
    read_header(path)
    assert len(calls) == 3                      # settled: verified once
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])    # changed: verified again, and the damage found
    with pytest.raises(InputError, match="truncated or corrupt"):
        read_image(path)
