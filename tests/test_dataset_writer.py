import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from nnunet_ts.boxes.segbox import segbox_from_mask
from nnunet_ts.cli.main import main
from nnunet_ts.datasets.raw_writer import DatasetSpec, write_dataset
from nnunet_ts.errors import InputError
from nnunet_ts.io.boxes_file import save_rectangles
from nnunet_ts.io.images import read_image, write_image
from nnunet_ts.io.manifest import read_manifest, write_manifest
from tests.factories.case_factory import GEOMETRY, SHAPE, make_mask, write_cases


@pytest.fixture
def records(tmp_path):
    return read_manifest(write_cases(tmp_path / "cases", n_strong=6, n_weak=2, n_test=2))


def write_nan_image(path: Path) -> None:
    # SimpleITK's writer replaces NaN by 0, so the NaN file comes from nibabel, as from other tools
    import nibabel as nib
    data = np.zeros(SHAPE[::-1], np.float32)
    data[3, 4, 5] = np.nan
    nib.save(nib.Nifti1Image(data, np.diag([1.5, 1.5, 3.0, 1.0])), str(path))


def assert_nothing_written(raw: Path):
    """No dataset folder appears; only the hidden work folder that a rerun resumes from."""
    visible = [p.name for p in raw.iterdir() if not p.name.startswith(".")] if raw.exists() else []
    assert visible == []


def test_teacher_dataset_has_ct_segbox_and_masks(records, tmp_path):
    raw = tmp_path / "raw"
    folder = write_dataset(records, DatasetSpec("teacher", 501, "Teacher", segbox_mode="per_slice"), raw)
    assert folder == raw / "Dataset501_Teacher"
    meta = json.loads((folder / "dataset.json").read_text())
    assert meta["channel_names"] == {"0": "CT", "1": "noNorm"}
    assert meta["labels"] == {"background": 0, "tumour": 1}
    assert meta["numTraining"] == 6 and meta["file_ending"] == ".nii.gz"
    assert sorted(p.name for p in (folder / "imagesTr").iterdir())[:2] == ["case_000_0000.nii.gz",
                                                                          "case_000_0001.nii.gz"]
    assert len(list((folder / "imagesTs").iterdir())) == 4 and len(list((folder / "labelsTs").iterdir())) == 2
    for i in (1, 3):  # a case with two lesions and another
        segbox, geometry = read_image(folder / "imagesTr" / f"case_{i:03d}_0001.nii.gz")
        label, _ = read_image(folder / "labelsTr" / f"case_{i:03d}.nii.gz")
        assert geometry.mismatch(GEOMETRY) is None
        assert np.array_equal(label, make_mask(i))
        assert np.array_equal(segbox, segbox_from_mask(make_mask(i), "per_slice"))


def test_student_dataset_is_ct_only(records, tmp_path):
    folder = write_dataset(records, DatasetSpec("student", 502, "Student"), tmp_path / "raw")
    assert json.loads((folder / "dataset.json").read_text())["channel_names"] == {"0": "CT"}
    assert not list((folder / "imagesTr").glob("*_0001.nii.gz"))
    assert len(list((folder / "labelsTr").iterdir())) == 6


def test_weak_dataset_has_boxes_from_the_drawn_rectangles_and_no_masks(records, tmp_path):
    folder = write_dataset(records, DatasetSpec("weak", 503, "Weak"), tmp_path / "raw")
    assert not (folder / "labelsTr").exists() and not (folder / "labelsTs").exists()
    assert sorted(p.name for p in (folder / "imagesTs").iterdir()) == [
        "case_006_0000.nii.gz", "case_006_0001.nii.gz", "case_007_0000.nii.gz", "case_007_0001.nii.gz"]
    segbox, _ = read_image(folder / "imagesTs" / "case_007_0001.nii.gz")
    assert np.array_equal(segbox, segbox_from_mask(make_mask(7), "per_lesion"))
    meta = json.loads((folder / "nnunet_ts.json").read_text())
    assert meta["kind"] == "weak" and meta["cases"]["case_007"]["patient_id"] == "patient_003"


def test_splits_never_put_a_patient_in_two_folds(records, tmp_path):
    folder = write_dataset(records, DatasetSpec("teacher", 504, "T", num_folds=3), tmp_path / "raw")
    splits = json.loads((folder / "splits_final.json").read_text())
    assert len(splits) == 3
    patient = {r.case_id: r.patient_id for r in records}
    val_patients = [{patient[c] for c in fold["val"]} for fold in splits]
    assert sum(len(v) for v in val_patients) == len(set().union(*val_patients)) == 3
    for fold in splits:
        assert not {patient[c] for c in fold["train"]} & {patient[c] for c in fold["val"]}


def test_existing_dataset_id_is_kept_without_overwrite_and_replaced_with_it(records, tmp_path):
    raw = tmp_path / "raw"
    write_dataset(records, DatasetSpec("student", 505, "Old"), raw)
    with pytest.raises(InputError, match="Dataset505_Old already exists.*--overwrite"):
        write_dataset(records, DatasetSpec("student", 505, "New"), raw)
    assert [p.name for p in raw.iterdir()] == ["Dataset505_Old"]
    write_dataset(records, DatasetSpec("teacher", 505, "New"), raw, overwrite=True)
    assert [p.name for p in raw.iterdir()] == ["Dataset505_New"]


def _break_case(records, index, **changes):
    return [replace(r, **changes) if i == index else r for i, r in enumerate(records)]


def test_mask_with_other_spacing_is_refused_naming_the_file(records, tmp_path):
    bad = tmp_path / "bad_mask.nii.gz"
    write_image(bad, make_mask(2), replace(GEOMETRY, spacing=(1.5, 1.5, 2.0)))
    raw = tmp_path / "raw"
    with pytest.raises(InputError, match=r"bad_mask.nii.gz does not share the voxel grid.*spacing"):
        write_dataset(_break_case(records, 2, mask=bad), DatasetSpec("teacher", 506, "T"), raw)
    assert_nothing_written(raw)


@pytest.mark.parametrize("make_bad, message", [
    (lambda p: p.write_bytes(b"not an image at all"), "cannot be read"),
    (lambda p: write_nan_image(p), "NaN"),
    (lambda p: None, "does not exist"),
])
def test_broken_ct_is_refused_and_nothing_is_left(records, tmp_path, make_bad, message):
    bad = tmp_path / "bad_ct.nii.gz"
    make_bad(bad)
    raw = tmp_path / "raw"
    with pytest.raises(InputError, match=f"bad_ct.nii.gz.*{message}|{message}.*bad_ct"):
        write_dataset(_break_case(records, 1, ct=bad), DatasetSpec("student", 507, "S"), raw)
    assert_nothing_written(raw)


def test_probability_map_given_as_mask_is_refused(records, tmp_path):
    bad = tmp_path / "soft.nii.gz"
    write_image(bad, make_mask(0) * np.float32(0.7), GEOMETRY)
    with pytest.raises(InputError, match="non-integer"):
        write_dataset(_break_case(records, 0, mask=bad), DatasetSpec("student", 508, "S"), tmp_path / "raw")


def test_weak_case_with_empty_boxes_is_refused_unless_allowed(records, tmp_path):
    empty = tmp_path / "empty_boxes.json"
    save_rectangles(empty, [], SHAPE)
    broken = _break_case(records, 6, boxes=empty)
    with pytest.raises(InputError, match="empty_boxes.json holds no rectangle.*--allow-empty-boxes"):
        write_dataset(broken, DatasetSpec("weak", 509, "W"), tmp_path / "raw")
    folder = write_dataset(broken, DatasetSpec("weak", 509, "W", allow_empty_boxes=True), tmp_path / "raw")
    segbox, _ = read_image(folder / "imagesTs" / "case_006_0001.nii.gz")
    assert not segbox.any()


def test_boxes_drawn_on_another_shape_are_refused(records, tmp_path):
    other = tmp_path / "other_boxes.json"
    save_rectangles(other, [], (16, 32, 40))
    with pytest.raises(InputError, match="shape"):
        write_dataset(_break_case(records, 7, boxes=other), DatasetSpec("weak", 510, "W"), tmp_path / "raw")


def test_strong_case_without_mask_is_refused(records, tmp_path):
    with pytest.raises(InputError, match="case_000: the manifest gives no mask"):
        write_dataset(_break_case(records, 0, mask=None), DatasetSpec("teacher", 511, "T"), tmp_path / "raw")


def test_manifest_without_strong_cases_is_refused(records, tmp_path):
    weak_only = [r for r in records if r.subset == "weak"]
    with pytest.raises(InputError, match="no 'strong' cases"):
        write_dataset(weak_only, DatasetSpec("teacher", 512, "T"), tmp_path / "raw")


def test_stale_partial_folder_from_a_crash_is_cleaned(records, tmp_path):
    raw = tmp_path / "raw"
    (raw / ".Dataset513_S.partial" / "imagesTr").mkdir(parents=True)
    (raw / ".Dataset513_S.partial" / "imagesTr" / "stray_0000.nii.gz").write_text("x")
    write_dataset(records, DatasetSpec("student", 513, "S"), raw)
    assert [p.name for p in raw.iterdir()] == ["Dataset513_S"]
    assert not (raw / "Dataset513_S" / "imagesTr" / "stray_0000.nii.gz").exists()


@pytest.fixture
def conversions(monkeypatch):
    """Case ids converted by write_case, in order (workers=1 runs in this process)."""
    import nnunet_ts.datasets.raw_writer as writer

    converted, original = [], writer.write_case

    def counting(job):
        converted.append(job.record.case_id)
        return original(job)

    monkeypatch.setattr(writer, "write_case", counting)
    return converted


def test_rerun_after_an_error_resumes_with_the_finished_cases(records, tmp_path, conversions):
    bad = tmp_path / "missing_mask.nii.gz"
    raw = tmp_path / "raw"
    with pytest.raises(InputError, match="2 case.s. already written are kept in .*reused when you rerun"):
        write_dataset(_break_case(records, 2, mask=bad), DatasetSpec("teacher", 515, "T"), raw)
    assert conversions == ["case_000", "case_001", "case_002"]
    conversions.clear()
    folder = write_dataset(records, DatasetSpec("teacher", 515, "T"), raw)
    assert conversions == ["case_002", "case_003", "case_004", "case_005", "case_008", "case_009"]
    assert [p.name for p in raw.iterdir()] == ["Dataset515_T"]
    fresh = write_dataset(records, DatasetSpec("teacher", 516, "T"), tmp_path / "fresh")
    for path in sorted((fresh / "imagesTr").iterdir()):
        assert np.array_equal(read_image(path)[0], read_image(folder / "imagesTr" / path.name)[0])
    assert (folder / "splits_final.json").read_text() == (fresh / "splits_final.json").read_text()


def _interrupted_run(records, spec, raw, after: int):
    """Write a dataset and stop it (like Ctrl-C) after ``after`` cases."""
    def stop(done):
        if done == after:
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        write_dataset(records, spec, raw, progress=stop)


def test_changed_inputs_settings_and_cases_are_not_reused(records, tmp_path, conversions):
    raw, spec = tmp_path / "raw", DatasetSpec("teacher", 517, "T")
    _interrupted_run(records, spec, raw, after=3)
    conversions.clear()
    write_image(records[1].ct, np.zeros(SHAPE, np.int16), GEOMETRY)  # case_001's CT changes
    fewer = [r for r in records if r.case_id != "case_000"]          # case_000 leaves the manifest
    folder = write_dataset(fewer, spec, raw)
    assert conversions[0] == "case_001" and "case_002" not in conversions
    assert not (folder / "imagesTr" / "case_000_0000.nii.gz").exists()
    assert not read_image(folder / "imagesTr" / "case_001_0000.nii.gz")[0].any()

    _interrupted_run(records, DatasetSpec("teacher", 518, "T"), raw, after=2)
    conversions.clear()
    write_dataset(records, DatasetSpec("teacher", 518, "T", segbox_mode="box3d"), raw)
    assert conversions[:2] == ["case_000", "case_001"]  # other settings: started afresh


def test_parallel_workers_write_the_same_dataset(records, tmp_path):
    a = write_dataset(records, DatasetSpec("teacher", 514, "A"), tmp_path / "a")
    b = write_dataset(records, DatasetSpec("teacher", 514, "A"), tmp_path / "b", workers=2)
    for path in (a / "imagesTr").iterdir():
        assert np.array_equal(read_image(path)[0], read_image(b / "imagesTr" / path.name)[0])


def test_manifest_errors_name_the_line(tmp_path):
    manifest = tmp_path / "cases.csv"
    manifest.write_text("case_id,patient_id,subset,ct\na,p,strong,a.nii.gz\na,p,weak,b.nii.gz\n")
    with pytest.raises(InputError, match="line 3.*appears twice"):
        read_manifest(manifest)
    manifest.write_text("case_id,patient_id,subset,ct\na,p,golden,a.nii.gz\n")
    with pytest.raises(InputError, match="line 2.*subset 'golden'"):
        read_manifest(manifest)
    manifest.write_text("case_id,subset\n")
    with pytest.raises(InputError, match="lacks the column"):
        read_manifest(manifest)


def test_manifest_round_trip_keeps_relative_paths(records, tmp_path):
    manifest = tmp_path / "cases" / "copy.csv"
    write_manifest(manifest, records)
    assert "/" not in manifest.read_text().splitlines()[1].split(",")[3]
    assert read_manifest(manifest) == records


def test_cli_reports_bad_input_in_one_line_with_exit_3(records, tmp_path, capsys):
    cases = tmp_path / "cases"
    assert main(["dataset", "teacher", "--cases", str(cases), "-d", "520", "-n", "T",
                 "--raw", str(tmp_path / "raw")]) == 0
    code = main(["dataset", "student", "--cases", str(cases), "-d", "520", "-n", "S",
                 "--raw", str(tmp_path / "raw")])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 3 and err.startswith("nnunet_ts dataset: error:") and "--overwrite" in err


def test_cli_rejects_out_of_range_dataset_id(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["dataset", "teacher", "--cases", str(tmp_path), "-d", "1000", "-n", "T"])
    assert exc.value.code == 2 and "1 to 999" in capsys.readouterr().err


def test_cli_copies_splits_where_nnunet_reads_them(records, tmp_path, monkeypatch):
    monkeypatch.setenv("nnUNet_preprocessed", str(tmp_path / "pre"))
    assert main(["dataset", "student", "--cases", str(tmp_path / "cases"), "-d", "521", "-n", "S",
                 "--raw", str(tmp_path / "raw"), "--folds", "2"]) == 0
    copied = tmp_path / "pre" / "Dataset521_S" / "splits_final.json"
    assert copied.read_text() == (tmp_path / "raw" / "Dataset521_S" / "splits_final.json").read_text()
