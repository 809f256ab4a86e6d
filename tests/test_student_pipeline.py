"""Soft targets through nnU-Net: preprocessing, data loader, augmentation, deep supervision, a step.

The cases are (3.0, 1.5, 1.5) mm (z, y, x) and planned at (2.0, 1.0, 1.0) mm, so preprocessing
really resamples; one case has zero slices in its CT, so nnU-Net's crop to the nonzero region crops.
"""
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from nnunet_ts.cli.main import main
from tests.conftest import STUDENT_ID
from tests.factories.case_factory import GEOMETRY
from tests.factories.trainers import make_trainer

pytestmark = pytest.mark.xdist_group("planned_datasets")

N_STRONG, N_PSEUDO, CROPPED_CASE = 4, 4, 5  # the session's student_root (tests/conftest.py)
PSEUDO = [f"case_{i:03d}" for i in range(N_STRONG, N_STRONG + N_PSEUDO)]


@pytest.fixture
def student_env(student_root, in_root, monkeypatch):
    monkeypatch.setenv("nnUNet_n_proc_DA", "0")
    return in_root(student_root)


def _preprocessed(root: Path) -> Path:
    return root / "nnUNet_preprocessed" / f"Dataset{STUDENT_ID}_Soft"


def _independent_linear_resampling(array: np.ndarray, shape) -> np.ndarray:
    """scipy map_coordinates, order 1, voxel centres: out[o] = in[(o + 0.5) * n_in / n_out - 0.5]."""
    from scipy import ndimage

    axes = [(np.arange(n_out) + 0.5) * n_in / n_out - 0.5 for n_in, n_out in zip(array.shape, shape)]
    grid = np.meshgrid(*axes, indexing="ij")
    return ndimage.map_coordinates(array.astype(np.float64), grid, order=1, mode="nearest")


def test_preprocessed_soft_targets_match_an_independent_linear_resampling(student_env):
    import pickle

    from nnunetv2.training.dataloading.nnunet_dataset import infer_dataset_class

    from nnunet_ts.io.images import read_image
    from nnunet_ts.student.soft_targets import soft_target_file

    assert main(["soft-targets", "-d", str(STUDENT_ID), "-c", "3d_fullres"]) == 0
    folder = _preprocessed(student_env) / "nnUNetPlans_3d_fullres"
    assert sorted(p.name for p in folder.glob("*_soft.npy")) == [f"{c}_soft.npy" for c in PSEUDO]
    plans = json.loads((_preprocessed(student_env) / "nnUNetPlans.json").read_text())
    transpose = plans["transpose_forward"]
    dataset = infer_dataset_class(str(folder))(str(folder))
    assert sorted(dataset.identifiers) == [f"case_{i:03d}" for i in range(N_STRONG + N_PSEUDO)]
    raw = student_env / "nnUNet_raw" / f"Dataset{STUDENT_ID}_Soft"
    for case in PSEUDO:
        stored = np.load(soft_target_file(folder, case))
        assert stored.dtype == np.uint8
        properties = pickle.loads((folder / f"{case}.pkl").read_bytes())
        soft, _ = read_image(raw / "softTargetsTr" / f"{case}.nii.gz")
        soft = soft.transpose(transpose)
        (z0, z1), (y0, y1), (x0, x1) = properties["bbox_used_for_cropping"]
        cropped = soft[z0:z1, y0:y1, x0:x1]
        if case == f"case_{CROPPED_CASE:03d}":
            assert cropped.shape[0] == GEOMETRY.shape_zyx[0] - 2  # the zero slices are cropped away
        data, seg, _, _ = dataset.load_case(case)
        assert stored.shape == data.shape[1:] == tuple(round(s * 1.5) for s in cropped.shape)
        expected = _independent_linear_resampling(cropped, stored.shape)
        assert np.abs(stored / 255.0 - expected).max() <= 1 / 255
        # on the grid of nnU-Net's own resampled mask of this case (soft >= 0.5 on the raw grid)
        agreement = ((stored >= 128) == (np.asarray(seg)[0] > 0)).mean()
        assert agreement >= 0.99
    # up to date: a second run makes nothing
    from nnunet_ts.student.soft_targets import preprocess_dataset_soft_targets

    assert preprocess_dataset_soft_targets(_preprocessed(student_env), raw, "3d_fullres")[1] == []


def _trainer(trainer_name: str = "TeacherStudentTrainer", settings: dict | None = None):
    import nnunet_ts.trainers.teacher_student_trainers as trainers

    pre = Path(os.environ["nnUNet_preprocessed"]) / f"Dataset{STUDENT_ID}_Soft"
    return make_trainer(getattr(trainers, trainer_name), pre, settings=settings)


def _training_pipeline(trainer):
    patch = trainer.configuration_manager.patch_size
    rotation, dummy_2d, _, mirror_axes = trainer.configure_rotation_dummyDA_mirroring_and_inital_patch_size()
    return trainer.get_training_transforms(
        patch, rotation, trainer._get_deep_supervision_scales(), mirror_axes, dummy_2d,
        use_mask_for_norm=trainer.configuration_manager.use_mask_for_norm,
        foreground_labels=trainer.label_manager.foreground_labels), tuple(patch)


def _set_augmentations(pipeline, spatial: bool, intensity: bool, mirror: bool) -> None:
    from batchgeneratorsv2.transforms.spatial.mirroring import MirrorTransform
    from batchgeneratorsv2.transforms.spatial.spatial import SpatialTransform
    from batchgeneratorsv2.transforms.utils.random import RandomTransform

    found = set()
    for t in pipeline.transforms:
        if isinstance(t, RandomTransform):
            t.apply_probability = 1.0 if intensity else 0.0
            found.add("intensity")
        if isinstance(t, SpatialTransform):
            t.p_rotation = t.p_scaling = 1.0 if spatial else 0.0
            t.p_elastic_deform = 0.0
            found.add("spatial")
        if isinstance(t, MirrorTransform):
            t.allowed_axes = t.allowed_axes if mirror else ()
            found.add("mirror")
    assert found == {"intensity", "spatial", "mirror"}


def _pseudo_sample(patch, seed: int):
    """A pseudo sample as the data loader hands it over: a CT-like image, and the segmentation
    (hard mask, soft target quantised to 0-255). The soft target is a logistic ramp across the surface
    of a tumour-sized ellipsoid (semi-axes 3-7 voxels), 0.5 on the surface; the mask is soft >= 0.5."""
    rng = np.random.default_rng(seed)
    z, y, x = np.meshgrid(*[np.linspace(-1, 1, n) for n in patch], indexing="ij")
    centre = rng.uniform(-0.3, 0.3, 3)
    radius = np.sqrt(((z - centre[0]) / 0.4) ** 2 + ((y - centre[1]) / 0.3) ** 2 + ((x - centre[2]) / 0.45) ** 2)
    stored = np.round(255 / (1 + np.exp((radius - 1) * 8)))
    image = torch.from_numpy(rng.normal(0, 1, (1, *patch)).astype(np.float32))
    seg = torch.from_numpy(np.stack([stored >= 128, stored]).astype(np.int16))
    return image, seg


def test_mirroring_only_gives_the_exact_mirror_of_the_soft_target(student_env):
    trainer = _trainer("TeacherStudentTrainer")  # mirroring on (the budget variants switch it off)
    pipeline, patch = _training_pipeline(trainer)
    _set_augmentations(pipeline, spatial=False, intensity=False, mirror=True)
    flips_seen = set()
    for seed in range(12):
        image, seg = _pseudo_sample(patch, seed)
        out = pipeline(image=image.clone(), segmentation=seg.clone())
        target = out["segmentation"][0]
        matches = [axes for axes in [(), (0,), (1,), (2,), (0, 1), (0, 2), (1, 2), (0, 1, 2)]
                   if torch.equal(out["image"][0], torch.flip(image[0], axes))]
        assert len(matches) == 1
        axes = matches[0]
        soft = seg[1].float() * (1.0 / 255)
        assert torch.equal(target[0], torch.flip(soft, axes))  # the exact mirror, same axes as the CT
        flips_seen.add(axes)
    assert len(flips_seen) >= 3


def test_intensity_augmentations_never_touch_the_soft_target(student_env):
    trainer = _trainer("TeacherStudentTrainer")
    pipeline, patch = _training_pipeline(trainer)
    _set_augmentations(pipeline, spatial=False, intensity=True, mirror=False)
    image, seg = _pseudo_sample(patch, 0)
    out = pipeline(image=image.clone(), segmentation=seg.clone())
    assert not torch.allclose(out["image"][0], image[0])
    assert torch.equal(out["segmentation"][0][0], seg[1].float() * (1.0 / 255))


def test_all_augmentations_keep_the_target_soft_and_aligned_with_the_hard_mask(student_env):
    """The pseudo sample's soft target against its hard mask sent through the same pipeline as a strong
    sample, with the same random parameters (same seeds; the CT outputs are checked to be identical)."""
    trainer = _trainer("TeacherStudentTrainer")
    pipeline, patch = _training_pipeline(trainer)
    _set_augmentations(pipeline, spatial=True, intensity=True, mirror=True)
    for seed in range(8):
        image, seg = _pseudo_sample(patch, seed)
        torch.manual_seed(seed), np.random.seed(seed)
        pseudo = pipeline(image=image.clone(), segmentation=seg.clone())
        torch.manual_seed(seed), np.random.seed(seed)
        strong = pipeline(image=image.clone(), segmentation=seg[:1].clone())
        assert torch.equal(pseudo["image"], strong["image"])  # same augmentation parameters
        soft, hard = pseudo["segmentation"][0][0], strong["segmentation"][0][0]
        assert soft.shape == hard.shape == patch
        assert 0.0 <= soft.min() and soft.max() <= 1.0
        assert set(torch.unique(hard).tolist()) <= {0.0, 1.0}
        disagree = (soft >= 0.5) != (hard > 0)
        assert 1 - disagree.float().mean() >= 0.99
        # they differ only on the border, where the hard mask's voxel steps cannot follow the surface
        assert (soft[disagree] - 0.5).abs().max() < 0.25 if disagree.any() else True
        assert ((soft > 0.05) & (soft < 0.95)).sum() > 50  # still soft after interpolation
        for t in pseudo["segmentation"]:
            assert t.shape[0] == 1 and t.dtype == torch.float32 and 0.0 <= t.min() and t.max() <= 1.0


def test_loader_batches_carry_probabilities_with_area_averaged_deep_supervision(student_env):
    trainer = _trainer(settings={"budget": [2, 4, 2], "mirroring": False})
    loader, val_loader = trainer.get_dataloaders()
    seen = {"strong": 0, "pseudo": 0}
    for _ in range(6):
        batch = next(loader)
        targets = batch["target"]
        assert isinstance(targets, list) and len(targets) == len(trainer._get_deep_supervision_scales())
        assert batch["data"].shape[1] == 1  # the CT only
        for b, key in enumerate(batch["keys"]):
            fg = targets[0][b, 0]
            source = trainer.sources[key]
            seen[source] += 1
            assert 0 <= fg.min() and fg.max() <= 1
            if source == "strong":
                assert set(torch.unique(fg).tolist()) <= {0.0, 1.0}
            else:
                coarse = targets[1][b, 0]
                factor = [a // c for a, c in zip(fg.shape, coarse.shape)]
                pooled = torch.nn.functional.avg_pool3d(fg[None, None], factor)[0, 0]
                torch.testing.assert_close(coarse, pooled)
    assert seen["strong"] and seen["pseudo"]
    # validation batches: the same targets, soft for pseudo cases (nnU-Net's online Dice is fed from them)
    val_ids = trainer.get_tr_and_val_datasets()[1].identifiers
    assert {trainer.sources[i] for i in val_ids} == {"strong", "pseudo"}  # the fold validates both sources
    val_seen = {"strong": 0, "pseudo_soft": 0}
    for _ in range(8):
        batch = next(val_loader)
        targets = batch["target"]
        assert isinstance(targets, list) and len(targets) == len(trainer._get_deep_supervision_scales())
        for b, key in enumerate(batch["keys"]):
            fg = targets[0][b, 0]
            assert fg.dtype == torch.float32 and 0 <= fg.min() and fg.max() <= 1 and targets[0].shape[1] == 1
            if trainer.sources[key] == "strong":
                assert set(torch.unique(fg).tolist()) <= {0.0, 1.0}
                val_seen["strong"] += 1
            elif fg.max() > 0.5:  # a patch with tumour: its edge is soft, as the teacher's probability
                assert ((fg > 0.05) & (fg < 0.95)).sum() > 10
                val_seen["pseudo_soft"] += 1
    assert val_seen["strong"] and val_seen["pseudo_soft"]


def test_train_and_validation_step_tell_the_loss_the_sources(student_env):
    trainer = _trainer("TeacherStudentBaldeonCalistoTrainer")
    trainer.dataloader_train, trainer.dataloader_val = trainer.get_dataloaders()
    trainer.network.train()
    batch = next(trainer.dataloader_train)
    result = trainer.train_step(batch)
    assert np.isfinite(result["loss"])
    expected = [trainer.sources[k] == "pseudo" for k in batch["keys"]]
    assert trainer.student_loss._is_pseudo.tolist() == expected
    trainer.network.eval()
    out = trainer.validation_step(next(trainer.dataloader_val))
    assert np.isfinite(out["loss"]) and out["tp_hard"].shape == (1,)


def test_balanced_trainer_draws_strong_and_pseudo_one_to_one(student_env):
    trainer = _trainer(settings={"strong_fraction": 0.5})
    dataset_tr, _ = trainer.get_tr_and_val_datasets()
    drawn = dataset_tr.identifiers
    strong = sum(trainer.sources[i] == "strong" for i in drawn)
    assert strong * 2 == len(drawn)


def test_without_sources_every_case_is_strong(student_env):
    import nnunet_ts.trainers.teacher_student_trainers as trainers

    pre = _preprocessed(student_env)
    plans = json.loads((pre / "nnUNetPlans.json").read_text())
    plans["continue_training"] = False
    dataset_json = json.loads((pre / "dataset.json").read_text())
    del dataset_json["nnunet_ts_sources"]
    trainer = trainers.TeacherStudentTrainer(plans, "3d_tiny", 0, dataset_json, device=torch.device("cpu"))
    trainer.initialize()
    dataset_tr, _ = trainer.get_tr_and_val_datasets()
    assert trainer.sources == {} and not dataset_tr.pseudo_cases
    batch = next(trainer.get_dataloaders()[0])
    assert set(torch.unique(batch["target"][0]).tolist()) <= {0.0, 1.0}  # nnU-Net's masks


def test_soft_targets_command_errors(student_env, capsys, tmp_path):
    assert main(["soft-targets", "-d", "977"]) == 3
    assert "no Dataset977_*" in capsys.readouterr().err
    assert main(["soft-targets", "-d", str(STUDENT_ID), "-c", "2d_nope"]) == 3
    assert "has no configuration '2d_nope'" in capsys.readouterr().err
    # a stored soft target whose raw file is gone is trusted; a missing one is an error naming the file
    folder = _preprocessed(student_env) / "nnUNetPlans_3d_fullres"
    from nnunet_ts.errors import InputError
    from nnunet_ts.student.soft_targets import ensure_soft_targets

    with pytest.raises(InputError, match=r"soft target .*nowhere.case_004.nii.gz of pseudo case case_004 is missing"):
        ensure_soft_targets(folder, tmp_path / "nowhere", ["case_004"], None, overwrite=True)
    assert main(["soft-targets", "-d", str(STUDENT_ID)]) == 0
    assert ensure_soft_targets(folder, tmp_path / "nowhere", ["case_004"], None) == []
