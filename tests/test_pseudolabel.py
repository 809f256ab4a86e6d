"""The pseudo-label step on a tiny CPU teacher: the dataset it writes, its soft targets against
nnU-Net's predictor, resume after a kill, shards + merge, and the errors that write nothing."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from nnunet_ts.cli.main import main
from nnunet_ts.errors import InputError
from nnunet_ts.io.images import read_image, write_image
from nnunet_ts.pseudolabel.quality import pseudo_label_quality
from nnunet_ts.pseudolabel.roi import box_regions
from tests.factories.case_factory import SHAPE
from tests.factories.stock import prefix, run

pytestmark = pytest.mark.xdist_group("box_teacher_model")

TEACHER_ID, STUDENT_ID, WEAK_ID = 911, 912, 913  # the session's box_teacher_model (tests/conftest.py)


@pytest.fixture
def env(box_teacher_model, in_root):
    """Teacher, student and weak datasets of hand-made cases, and a teacher trained on 2 folds."""
    return in_root(box_teacher_model.root)


def _teacher(root: Path) -> Path:
    return root / "nnUNet_results" / f"Dataset{TEACHER_ID}_T" / "BoxTeacherTrainer__nnUNetPlans__3d_tiny"


def _args(root: Path, did: int, *extra: str, folds=("0", "1")) -> list[str]:
    return ["pseudolabel", "--teacher", str(_teacher(root)), "--folds", *folds, "--weak", str(WEAK_ID),
            "--strong", str(STUDENT_ID), "-d", str(did), "-n", f"P{did}", "--device", "cpu", *extra]


def _dataset(root: Path, did: int) -> Path:
    return root / "nnUNet_raw" / f"Dataset{did}_P{did}"


def _contents(folder: Path) -> dict:
    """Voxel data of every image and the per-case metadata of a written student dataset."""
    out = {}
    for path in sorted(folder.rglob("*.nii.gz")):
        array, geometry = read_image(path)
        out[str(path.relative_to(folder))] = (array.tobytes(), geometry)
    dataset_json = json.loads((folder / "dataset.json").read_text())
    provenance = dataset_json.pop("nnunet_ts_pseudolabel")
    provenance.pop("date")
    dataset_json.pop("name")
    out["dataset.json"] = (dataset_json, provenance)
    quality = json.loads((folder / "pseudolabel_quality.json").read_text())["cases"]
    out["quality"] = quality
    return out


def test_regions_cover_each_box_with_margin_and_do_not_overlap():
    segbox = np.zeros((20, 60, 60), np.uint8)
    segbox[5:8, 10:14, 10:14] = 1
    segbox[5:8, 16:20, 10:14] = 1   # 2 voxels (3 mm) away: merged with the first
    segbox[15:17, 45:50, 45:50] = 1
    regions = box_regions(segbox, (3.0, 1.5, 1.5), margin_mm=4.5, min_size_mm=(0, 0, 0))
    assert regions == [(slice(3, 10), slice(7, 23), slice(7, 17)), (slice(13, 19), slice(42, 53), slice(42, 53))]
    # at least a patch wide, shifted inside the image at the border
    regions = box_regions(segbox, (3.0, 1.5, 1.5), margin_mm=0, min_size_mm=(30, 30, 30))
    assert all(r.stop - r.start >= 10 for region in regions for r in region[:1])
    assert all(0 <= r.start and r.stop <= n for region in regions for r, n in zip(region, segbox.shape))
    assert box_regions(np.zeros((4, 4, 4)), (1, 1, 1), 5.0) == []


def test_quality_figures_count_the_whole_map():
    """Computed on the part of the grid holding probability or box, the figures are those of the whole map."""
    rng = np.random.default_rng(0)
    probability = np.zeros((30, 40, 50), np.float32)
    probability[4:9, 5:12, 30:41] = rng.random((5, 7, 11))
    probability[20, 33, 2] = 0.7  # a lone voxel far from the rest
    segbox = np.zeros(probability.shape, np.uint8)
    segbox[4:9, 5:11, 30:41] = 1
    segbox[25:27, 1:3, 45:48] = 1  # a box the teacher left empty
    q = pseudo_label_quality(probability, segbox, 2.0)
    p64, box = probability.astype(np.float64), segbox > 0.5
    assert q["predicted_volume_mm3"] == 2.0 * (p64 >= 0.5).sum()
    assert q["box_volume_mm3"] == 2.0 * box.sum()
    assert q["mass_in_box"] == pytest.approx(p64[box].sum() / p64.sum(), rel=1e-12)
    assert q["mean_confidence"] == pytest.approx(p64[p64 >= 0.5].mean(), rel=1e-12)
    assert q["flags"] == []
    empty = pseudo_label_quality(np.zeros_like(probability), segbox, 2.0)
    assert empty["flags"] == ["empty"] and np.isnan(empty["mass_in_box"])
    assert empty["box_volume_mm3"] == q["box_volume_mm3"]
    outside = pseudo_label_quality(probability, np.zeros_like(segbox), 2.0)
    assert outside["flags"] == ["outside_box"] and outside["mass_in_box"] == 0.0


def test_roi_mode_predicts_context_crops_and_agrees_with_full_mode_there(env):
    from nnunet_ts.pseudolabel.teacher import Teacher, TeacherSpec

    teacher = Teacher.load(TeacherSpec(_teacher(env), folds=("0",)))
    weak = env / "nnUNet_raw" / f"Dataset{WEAK_ID}_W" / "imagesTs"
    ct, geometry = read_image(weak / "case_006_0000.nii.gz")
    segbox, _ = read_image(weak / "case_006_0001.nii.gz")
    assert segbox.any()
    # a scan several tiles wide: the case beside mirrored copies of itself that have no box
    ct = np.concatenate([ct, ct[:, :, ::-1], ct], axis=2)
    ct = np.concatenate([ct, ct[:, ::-1]], axis=1)
    segbox = np.pad(segbox, ((0, 0), (0, segbox.shape[1]), (0, 2 * segbox.shape[2])))
    predictor = teacher._predictor
    internal = predictor._internal_predict_sliding_window_return_logits
    calls = []

    def counting(data, slicers, do_on_device=True):
        calls.append((tuple(data.shape[1:]), len(slicers)))
        return internal(data, slicers, do_on_device)

    predictor._internal_predict_sliding_window_return_logits = counting
    roi = teacher.predict(ct, segbox, geometry.spacing_zyx, "roi", margin_mm=3.0)
    n_roi = len(calls)
    full = teacher.predict(ct, segbox, geometry.spacing_zyx, "full")
    # the crops are resampled and tiled, not the volume: fewer voxels and fewer tiles
    (full_shape, full_tiles), roi_calls = calls[-1], calls[:n_roi]
    assert sum(t for _, t in roi_calls) < full_tiles
    assert all(np.prod(shape) < np.prod(full_shape) for shape, _ in roi_calls)
    inside = np.zeros(ct.shape, bool)
    regions = box_regions(segbox, geometry.spacing_zyx, 3.0)
    for region in regions:
        inside[region] = True
    assert inside.any() and not inside.all() and np.isfinite(roi).all()
    assert (roi[~inside] == 0).all() and (full[~inside] > 0).any()
    # the crops hold the whole volume's tiles that reach the regions, resampled on the whole volume's grid:
    # the same probabilities there, up to the resampling at the crops' edges
    a, b = roi[inside], full[inside]
    difference = np.abs(a - b)
    print(f"ROI vs full inside the regions: mean |diff| {difference.mean():.5f}, max {difference.max():.4f}")
    assert difference.max() < 0.02 and difference.mean() < 0.002
    assert ((a >= 0.5) == (b >= 0.5)).mean() > 0.999
    empty = teacher.predict(ct, np.zeros_like(segbox), geometry.spacing_zyx, "roi")
    assert len(calls) == n_roi + 1 and not empty.any()


def test_aligned_crops_resample_onto_the_whole_images_grid():
    from nnunetv2.preprocessing.resampling.default_resampling import resample_data_or_seg_to_spacing
    from scipy.ndimage import gaussian_filter

    from nnunet_ts.pseudolabel.roi import aligned_crop, grid_offset

    shape, spacing, target = (40, 150, 160), (2.5, 0.73, 0.73), (1.5, 1.0, 1.0)  # z resampled apart (order 0)
    image = gaussian_filter(np.random.default_rng(1).normal(size=shape), 2).astype(np.float32)[None]

    def resampled(crop):
        return resample_data_or_seg_to_spacing(image[(slice(None), *crop)], spacing, target, is_seg=False,
                                               order=3, order_z=0)[0]

    whole = resampled((slice(None),) * 3)
    crop = (slice(11, 31), slice(40, 101), slice(55, 120))
    errors = []
    for c in (crop, aligned_crop(crop, shape, spacing, target)):
        assert all(a.start <= b.start and a.stop >= b.stop for a, b in zip(c, crop))  # contains the crop
        offsets = [grid_offset(a.start, a.stop - a.start, n, s / t) for a, n, s, t in zip(c, shape, spacing, target)]
        part = resampled(c)
        # the crop's samples in the whole image's resampled grid (the first sample's nearest)
        first = [round((a.start + 0.5 * (a.stop - a.start) / m) / (n / full) - 0.5)
                 for a, m, n, full in zip(c, part.shape, shape, whole.shape)]
        same = whole[tuple(slice(f, f + m) for f, m in zip(first, part.shape))]
        inner = (slice(2, -2),) * 3  # away from the crop's own edges (the spline's edge mode)
        errors.append((max(offsets), float(np.abs(part[inner] - same[inner]).mean())))
    (plain_offset, plain_error), (offset, error) = errors
    assert plain_offset > 0.1 and offset < 0.05
    assert error < plain_error / 5, errors


def test_tile_plan_holds_the_whole_volumes_tiles_that_reach_the_region():
    from nnunetv2.inference.sliding_window_prediction import compute_steps_for_sliding_window

    from nnunet_ts.pseudolabel.roi import grid_offset, tile_plan

    shape, spacing, target, patch = (120, 300, 310), (2.0, 0.7, 0.7), (1.5, 1.0, 1.0), (32, 64, 64)
    region = (slice(50, 71), slice(120, 161), slice(200, 251))
    plan = tile_plan(region, shape, spacing, target, patch, 0.5)
    full_shape = [round(n * s / t) for n, s, t in zip(shape, spacing, target)]
    for axis, (sl, crop, first, size, starts) in enumerate(zip(region, plan.crop, plan.first, plan.shape, plan.starts)):
        assert crop.start <= sl.start and crop.stop >= sl.stop and 0 <= crop.start and crop.stop <= shape[axis]
        ratio = spacing[axis] / target[axis]
        assert size == round((crop.stop - crop.start) * ratio)                  # nnU-Net's resampled length
        assert grid_offset(crop.start, crop.stop - crop.start, shape[axis], ratio) < 0.15
        whole = compute_steps_for_sliding_window(full_shape, patch, 0.5)[axis]
        assert all(s + first in whole and 0 <= s and s + patch[axis] <= size for s in starts)
        scale = shape[axis] / full_shape[axis]  # every sample the region is interpolated from is tiled
        needed = range(int((sl.start + 0.5) / scale - 0.5), int(np.ceil((sl.stop - 0.5) / scale - 0.5)) + 1)
        assert all(any(s + first <= j < s + first + patch[axis] for s in starts) for j in needed)
    assert len(plan.slicers(patch)) == np.prod([len(s) for s in plan.starts])
    assert tile_plan(region, (20, 300, 310), spacing, target, patch, 0.5) is None  # thinner than a patch


def test_context_crop_grows_a_region_by_half_a_patch_inside_the_image():
    from nnunet_ts.pseudolabel.roi import context_crop, within

    region = (slice(2, 6), slice(10, 20), slice(40, 50))
    crop = context_crop(region, (8, 64, 52), (3.0, 1.5, 1.5), (6.0, 7.5, 9.0))
    assert crop == (slice(0, 8), slice(5, 25), slice(34, 52))  # 2, 5 and 6 voxels, clipped at the border
    assert within(region, crop) == (slice(2, 6), slice(5, 15), slice(6, 16))


def test_pseudolabel_writes_a_student_dataset_nnunet_accepts(env):
    from nnunet_ts.datasets.student import read_sources
    from nnunet_ts.pseudolabel.teacher import sha256

    assert main(_args(env, 921)) == 0
    folder = _dataset(env, 921)
    dataset_json = json.loads((folder / "dataset.json").read_text())
    sources = read_sources(dataset_json)
    assert sorted(c for c, s in sources.items() if s == "pseudo") == [f"case_{i:03d}" for i in range(6, 10)]
    assert sorted(c for c, s in sources.items() if s == "strong") == [f"case_{i:03d}" for i in range(6)]
    provenance = dataset_json["nnunet_ts_pseudolabel"]
    assert provenance["folds"] == ["0", "1"] and provenance["mode"] == "roi"
    assert provenance["margin_mm"] == 20.0 and provenance["nnunetv2_version"].startswith("2.")
    assert provenance["checkpoint_sha256"]["1"] == sha256(_teacher(env) / "fold_1" / "checkpoint_final.pth")
    for i in range(6, 10):
        case = f"case_{i:03d}"
        soft, geometry = read_image(folder / "softTargetsTr" / f"{case}.nii.gz")
        mask, _ = read_image(folder / "labelsTr" / f"{case}.nii.gz")
        segbox, _ = read_image(folder / "segboxesTr" / f"{case}.nii.gz")
        weak_box, _ = read_image(env / "nnUNet_raw" / f"Dataset{WEAK_ID}_W" / "imagesTs" / f"{case}_0001.nii.gz")
        assert soft.dtype == np.float32 and 0 <= soft.min() and soft.max() <= 1 and soft.shape == SHAPE
        np.testing.assert_array_equal(mask, soft >= 0.5)
        np.testing.assert_array_equal(segbox, weak_box)
    report = (folder / "pseudolabel_quality.csv").read_text().splitlines()
    assert report[0].startswith("case_id,predicted_volume_mm3") and len(report) == 5
    assert not (env / "nnUNet_raw" / ".Dataset921_P921.pseudolabel").exists()
    run(prefix(env) + "nnUNetv2_plan_and_preprocess -d 921 -c 3d_fullres -np 1 --verify_dataset_integrity")


def test_soft_targets_are_the_predictors_probabilities(env, tmp_path):
    """Full mode: with one fold the soft target is nnUNetv2_predict's saved probability of class 1; with
    two folds it is the mean of the two folds' probabilities (a soft vote, not nnU-Net's logit mean)."""
    import torch

    # one torch thread on both sides (nnUNetv2_predict below: nnUNet_def_n_proc=1): other thread
    # counts split the convolutions' sums differently and round differently
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main(_args(env, 922, "--mode", "full", folds=("0",))) == 0
        assert main(_args(env, 925, "--mode", "full", folds=("0", "1"))) == 0
    finally:
        torch.set_num_threads(threads)
    weak_images = env / "nnUNet_raw" / f"Dataset{WEAK_ID}_W" / "imagesTs"
    probabilities = {}
    for fold in (0, 1):
        pred = tmp_path / f"pred_{fold}"
        run(prefix(env) + f"nnUNetv2_predict -i {weak_images} -o {pred} -d {TEACHER_ID} -c 3d_tiny -f {fold} "
            f"-tr BoxTeacherTrainer -device cpu --save_probabilities")
        probabilities[fold] = {f"case_{i:03d}": np.load(pred / f"case_{i:03d}.npz")["probabilities"][1]
                               for i in range(6, 10)}
    for i in range(6, 10):
        case = f"case_{i:03d}"
        one_fold, _ = read_image(_dataset(env, 922) / "softTargetsTr" / f"{case}.nii.gz")
        two_folds, _ = read_image(_dataset(env, 925) / "softTargetsTr" / f"{case}.nii.gz")
        # nnU-Net sums the sliding-window logits in float16; a wrong fold, mode or nonlinearity
        # differs by orders of magnitude more than these bounds
        for soft, expected in ((one_fold, probabilities[0][case]),
                               (two_folds, (probabilities[0][case] + probabilities[1][case]) / 2)):
            np.testing.assert_allclose(soft, expected, atol=2e-3)
            assert np.abs(soft - expected).mean() < 5e-5
        # the two folds disagree enough that a single fold would not pass as their vote
        assert np.abs(probabilities[0][case] - probabilities[1][case]).max() > 2e-2


def test_killed_run_resumes_to_identical_data(env, monkeypatch):
    from nnunet_ts.pseudolabel import run as run_module

    calls = {"n": 0}
    original = run_module._pseudo_label_case

    def dies_after_two(*args, **kwargs):
        if calls["n"] == 2:
            raise KeyboardInterrupt
        calls["n"] += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(run_module, "_pseudo_label_case", dies_after_two)
    assert main(_args(env, 923)) == 130
    assert not _dataset(env, 923).exists()
    work = env / "nnUNet_raw" / ".Dataset923_P923.pseudolabel" / "cases"
    assert len([p for p in work.iterdir() if not p.name.startswith(".")]) == 2
    monkeypatch.setattr(run_module, "_pseudo_label_case", original)
    assert main(_args(env, 923)) == 0
    if not _dataset(env, 921).exists():
        assert main(_args(env, 921)) == 0
    assert _contents(_dataset(env, 923)) == _contents(_dataset(env, 921))


def test_two_shards_and_merge_equal_one_run(env, capsys):
    assert main(_args(env, 924, "--num-parts", "2", "--part-id", "1")) == 0
    assert "rerun with --merge" in capsys.readouterr().out
    assert main(_args(env, 924, "--num-parts", "2", "--merge")) == 3
    assert "have no pseudo label yet" in capsys.readouterr().err
    assert main(_args(env, 924, "--num-parts", "2", "--part-id", "0")) == 0
    assert not _dataset(env, 924).exists()
    assert main(_args(env, 924, "--num-parts", "2", "--merge")) == 0
    if not _dataset(env, 921).exists():
        assert main(_args(env, 921)) == 0
    assert _contents(_dataset(env, 924)) == _contents(_dataset(env, 921))


def test_merge_copies_the_steps_own_outputs_and_checks_changed_ones(env, capsys):
    """Soft targets and masks the step wrote are copied as they are; a file changed since (its SHA-256 no
    longer the one recorded) is checked like any input: a damaged one stops the merge naming it, a valid
    one is taken with the mask derived from it again."""
    for part in ("0", "1"):
        assert main(_args(env, 926, "--num-parts", "2", "--part-id", part)) == 0
    capsys.readouterr()
    cases = env / "nnUNet_raw" / ".Dataset926_P926.pseudolabel" / "cases"
    kept, changed = sorted(p for p in cases.iterdir() if not p.name.startswith("."))[:2]
    written = json.loads((kept / "outputs.json").read_text())
    mask, geometry = read_image(kept / "mask.nii.gz")
    soft, _ = read_image(kept / "soft_target.nii.gz")
    np.testing.assert_array_equal(mask, soft >= 0.5)
    assert written["tumour_volume_mm3"] == pytest.approx(mask.sum() * geometry.voxel_volume_mm3)
    kept_bytes = (kept / "soft_target.nii.gz").read_bytes(), (kept / "mask.nii.gz").read_bytes()

    target = changed / "soft_target.nii.gz"
    whole = target.read_bytes()
    target.write_bytes(whole[: len(whole) // 2])
    assert main(_args(env, 926, "--num-parts", "2", "--merge")) == 3
    assert f"soft target {target} is truncated or corrupt" in capsys.readouterr().err
    assert not _dataset(env, 926).exists()

    other = np.zeros(geometry.shape_zyx, np.float32)
    other[2:4, 3:6, 3:6] = 0.75
    write_image(target, other, geometry)
    assert main(_args(env, 926, "--num-parts", "2", "--merge")) == 0
    folder = _dataset(env, 926)
    assert ((folder / "softTargetsTr" / f"{kept.name}.nii.gz").read_bytes(),
            (folder / "labelsTr" / f"{kept.name}.nii.gz").read_bytes()) == kept_bytes
    np.testing.assert_array_equal(read_image(folder / "softTargetsTr" / f"{changed.name}.nii.gz")[0], other)
    np.testing.assert_array_equal(read_image(folder / "labelsTr" / f"{changed.name}.nii.gz")[0], other >= 0.5)


def _nothing_written(root: Path, did: int) -> bool:
    raw = root / "nnUNet_raw"
    return not any(p.name.startswith((f"Dataset{did}_", f".Dataset{did}_")) for p in raw.iterdir())


def test_bad_inputs_give_one_error_and_write_nothing(env, capsys, tmp_path):
    assert main(_args(env, 931, folds=("0", "3"))) == 3
    assert "fold_3" in capsys.readouterr().err and _nothing_written(env, 931)

    ct_only = tmp_path / "ct_only_teacher"
    shutil.copytree(_teacher(env), ct_only)
    dataset_json = json.loads((ct_only / "dataset.json").read_text())
    dataset_json["channel_names"] = {"0": "CT"}
    (ct_only / "dataset.json").write_text(json.dumps(dataset_json))
    args = _args(env, 932)
    args[args.index("--teacher") + 1] = str(ct_only)
    assert main(args) == 3
    assert "reads 1 channel(s)" in capsys.readouterr().err and _nothing_written(env, 932)

    weak = tmp_path / "weak"
    shutil.copytree(env / "nnUNet_raw" / f"Dataset{WEAK_ID}_W", weak)
    box, geometry = read_image(weak / "imagesTs" / "case_008_0001.nii.gz")
    write_image(weak / "imagesTs" / "case_008_0001.nii.gz", np.zeros_like(box), geometry)
    args = _args(env, 933)
    args[args.index("--weak") + 1] = str(weak)
    assert main(args) == 3
    err = capsys.readouterr().err
    assert "case_008 has an empty segbox" in err and "--allow-empty-boxes" in err
    assert _nothing_written(env, 933)
    (weak / "imagesTs" / "case_008_0001.nii.gz").unlink()
    assert main(args) == 3
    assert "case_008 has no segbox channel" in capsys.readouterr().err and _nothing_written(env, 933)

    assert main(_args(env, STUDENT_ID)) == 3
    assert "already exists" in capsys.readouterr().err and _nothing_written(env, 934)
    with pytest.raises(InputError, match="mode"):
        from nnunet_ts.pseudolabel.run import PseudoLabelJob
        from nnunet_ts.pseudolabel.teacher import TeacherSpec

        PseudoLabelJob(TeacherSpec(Path(".")), Path("."), Path("."), 1, "x", Path("."), mode="fast")
