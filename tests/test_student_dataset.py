"""The student dataset format, its checks, and drawing strong:pseudo at a ratio."""
import json
from collections import Counter

import numpy as np
import pytest

from nnunet_ts.datasets.student import StudentCase, read_sources, write_student_dataset
from nnunet_ts.errors import InputError
from nnunet_ts.io.images import Geometry, read_image, write_image
from nnunet_ts.nnunet.seg_channel_dataset import StackedChannel
from nnunet_ts.student.soft_data import source_weighted_identifiers
from tests.factories.case_factory import GEOMETRY
from tests.factories.student_factory import soft_target_of, write_student_cases


def test_layout_sources_and_derived_pseudo_masks(tmp_path):
    cases = write_student_cases(tmp_path / "cases", n_strong=2, n_pseudo=2)
    segbox = tmp_path / "cases" / "segbox.nii.gz"
    write_image(segbox, np.ones(GEOMETRY.shape_zyx, np.uint8), GEOMETRY)
    cases[3] = StudentCase(cases[3].case_id, cases[3].ct, "pseudo", soft_target=cases[3].soft_target,
                           segbox=segbox, patient_id=cases[3].patient_id)
    folder = write_student_dataset(cases, 911, "Student", tmp_path / "raw", num_folds=2)
    assert folder.name == "Dataset911_Student"
    dataset_json = json.loads((folder / "dataset.json").read_text())
    assert dataset_json["channel_names"] == {"0": "CT"} and dataset_json["numTraining"] == 4
    assert read_sources(folder / "dataset.json") == {"case_000": "strong", "case_001": "strong",
                                                     "case_002": "pseudo", "case_003": "pseudo"}
    assert dataset_json["nnunet_ts_soft_targets"] == "softTargetsTr"
    assert dataset_json["nnunet_ts_segboxes"] == "segboxesTr"
    assert sorted(p.name for p in (folder / "softTargetsTr").iterdir()) == ["case_002.nii.gz", "case_003.nii.gz"]
    assert [p.name for p in (folder / "segboxesTr").iterdir()] == ["case_003.nii.gz"]
    soft, geometry = read_image(folder / "softTargetsTr" / "case_002.nii.gz")
    assert soft.dtype == np.float32 and geometry.mismatch(GEOMETRY) is None
    mask, _ = read_image(folder / "labelsTr" / "case_002.nii.gz")
    np.testing.assert_array_equal(mask, soft >= 0.5)  # a pseudo case's hard mask: soft >= 0.5
    assert 0 < mask.sum() < (soft > 0).sum()
    splits = json.loads((folder / "splits_final.json").read_text())
    assert len(splits) == 2 and sorted(splits[0]["val"] + splits[1]["val"]) == sorted(c.case_id for c in cases)
    assert not list(tmp_path.joinpath("raw").glob(".*"))  # no work folder left


def _soft_file(tmp_path, array, geometry=GEOMETRY, name="soft.nii.gz"):
    path = tmp_path / name
    write_image(path, array, geometry)
    return path


def test_errors(tmp_path):
    cases = write_student_cases(tmp_path / "cases", n_strong=2, n_pseudo=2)
    raw = tmp_path / "raw"
    bad = soft_target_of(np.ones(GEOMETRY.shape_zyx)) * 1.5
    out_of_range = _soft_file(tmp_path, bad.astype(np.float32))
    with pytest.raises(InputError, match=r"soft.nii.gz has values in \[.*\]; it must be a foreground probability"):
        write_student_dataset([*cases[:3], StudentCase("x", cases[3].ct, "pseudo", soft_target=out_of_range)],
                              912, "S", raw)
    shifted = Geometry(GEOMETRY.shape_zyx, GEOMETRY.spacing, (0.0, 0.0, 0.0), GEOMETRY.direction)
    moved = _soft_file(tmp_path, np.zeros(GEOMETRY.shape_zyx, np.float32), shifted, "moved.nii.gz")
    with pytest.raises(InputError, match="moved.nii.gz does not share the voxel grid.*origin"):
        write_student_dataset([*cases[:3], StudentCase("x", cases[3].ct, "pseudo", soft_target=moved)],
                              912, "S", raw)
    assert not raw.exists() or not list(raw.iterdir())  # nothing written, no work folder left
    with pytest.raises(InputError, match="a strong case needs its mask"):
        StudentCase("a", cases[0].ct, "strong")
    with pytest.raises(InputError, match="needs its soft target"):
        StudentCase("a", cases[0].ct, "pseudo")
    with pytest.raises(InputError, match="source 'weak' must be one of strong, pseudo"):
        StudentCase("a", cases[0].ct, "weak")
    with pytest.raises(InputError, match="only a pseudo case with its mask can come checked"):
        StudentCase("a", cases[0].ct, "strong", mask=cases[0].mask, checked_volume_mm3=1.0)
    with pytest.raises(InputError, match="only a pseudo case with its mask can come checked"):
        StudentCase("a", cases[3].ct, "pseudo", soft_target=cases[3].soft_target, checked_volume_mm3=1.0)
    with pytest.raises(InputError, match="case_000 more than once"):
        write_student_dataset([cases[0], cases[0]], 912, "S", raw)
    write_student_dataset(cases, 912, "S", raw)
    with pytest.raises(InputError, match="already exists"):
        write_student_dataset(cases, 912, "Other", raw)
    assert write_student_dataset(cases[:3], 912, "Other", raw, overwrite=True).name == "Dataset912_Other"
    assert [p.name for p in raw.iterdir()] == ["Dataset912_Other"]
    with pytest.raises(InputError, match="no 'nnunet_ts_sources'"):
        read_sources({"channel_names": {"0": "CT"}})


def test_source_weighted_identifiers():
    ids = [f"s{i}" for i in range(3)] + [f"p{i}" for i in range(12)]
    pseudo = {i for i in ids if i.startswith("p")}
    assert source_weighted_identifiers(ids, pseudo, None) == ids
    drawn = Counter(source_weighted_identifiers(ids, pseudo, 0.5))
    strong_share = sum(n for i, n in drawn.items() if i.startswith("s")) / sum(drawn.values())
    assert strong_share == 0.5 and drawn["s0"] == drawn["s2"] and drawn["p0"] == drawn["p11"]
    drawn = Counter(source_weighted_identifiers(ids, pseudo, 0.3))
    assert sum(n for i, n in drawn.items() if i.startswith("s")) / sum(drawn.values()) == pytest.approx(0.3)
    assert source_weighted_identifiers(ids[:3], pseudo, 0.5) == ids[:3]  # one source only: unchanged
    with pytest.raises(ValueError, match=r"strong_fraction must be in \(0, 1\)"):
        source_weighted_identifiers(ids, pseudo, 1.0)


def test_stacked_soft_channel_crops_like_the_mask():
    from acvl_utils.cropping_and_padding.bounding_boxes import crop_and_pad_nd

    seg = (np.arange(4 * 5 * 6).reshape(1, 4, 5, 6) % 3 == 0).astype(np.int16)
    soft = np.arange(4 * 5 * 6, dtype=np.uint8).reshape(4, 5, 6) + 100  # up to 219: beyond int8
    stacked = StackedChannel(seg, soft)
    assert stacked.shape == (2, 4, 5, 6)
    bbox = [[-1, 3], [1, 4], [2, 8]]  # partly outside: padded with -1, as nnU-Net pads the mask
    patch = crop_and_pad_nd(stacked, bbox, -1, cast_cropped_to=np.int16)
    assert patch.dtype == np.int16 and patch.shape == (2, 4, 3, 6)
    np.testing.assert_array_equal(patch[:1], crop_and_pad_nd(seg, bbox, -1))
    np.testing.assert_array_equal(patch[1], crop_and_pad_nd(soft.astype(np.int16), bbox, -1))
    with pytest.raises(ValueError, match="preprocess the soft targets again"):
        StackedChannel(seg, soft[:3])


def test_inputs_already_in_the_dataset_format_are_copied_byte_for_byte_others_written_anew(tmp_path):
    cases = write_student_cases(tmp_path / "cases", n_strong=2, n_pseudo=1)
    # a mask within the geometry tolerance but not the CT's exact header, in another data type
    near = Geometry(GEOMETRY.shape_zyx, GEOMETRY.spacing,
                    tuple(o + 1e-5 for o in GEOMETRY.origin), GEOMETRY.direction)
    mask, _ = read_image(cases[1].mask)
    other = tmp_path / "other_mask.nii.gz"
    write_image(other, mask.astype(np.int16), near)
    cases[1] = StudentCase(cases[1].case_id, cases[1].ct, "strong", mask=other, patient_id=cases[1].patient_id)
    folder = write_student_dataset(cases, 913, "Copies", tmp_path / "raw", num_folds=2)
    for case in cases:
        assert (folder / "imagesTr" / f"{case.case_id}_0000.nii.gz").read_bytes() == case.ct.read_bytes()
    assert (folder / "labelsTr" / f"{cases[0].case_id}.nii.gz").read_bytes() == cases[0].mask.read_bytes()
    assert (folder / "softTargetsTr" / f"{cases[2].case_id}.nii.gz").read_bytes() == cases[2].soft_target.read_bytes()
    rewritten, geometry = read_image(folder / "labelsTr" / f"{cases[1].case_id}.nii.gz")
    assert rewritten.dtype == np.uint8 and geometry == read_image(cases[1].ct)[1]   # the CT's header
    np.testing.assert_array_equal(rewritten, mask)
