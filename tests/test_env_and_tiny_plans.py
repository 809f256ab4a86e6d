import json
import os

import numpy as np
import pytest

from nnunet_ts.cli.env import env_lines
from nnunet_ts.cli.main import main
from nnunet_ts.errors import InputError
from nnunet_ts.nnunet.paths import trainers_dir
from nnunet_ts.planners.tiny_plans import TinyPlan, add_tiny_configuration
from tests.factories.plans import FULLRES

# The 3d_fullres configuration nnU-Net 2.8.1 plans for a 16x32x32 dataset at (3, 1.5, 1.5) mm.


def write_plans(path, fullres):
    path.write_text(json.dumps({"dataset_name": "Dataset901_T", "plans_name": "nnUNetPlans",
                                "configurations": {"3d_fullres": fullres}}))
    return path


@pytest.fixture
def plans_file(tmp_path):
    return write_plans(tmp_path / "nnUNetPlans.json", FULLRES)


# FULLRES as nnU-Net plans it for larger images
LARGE_FULLRES = {**FULLRES, "patch_size": [64, 128, 128], "median_image_size_in_voxels": [64.0, 128.0, 128.0]}


def test_env_prepends_our_trainer_folder_once_and_keeps_others():
    ours = str(trainers_dir())
    assert (trainers_dir() / "baseline_trainers.py").is_file()
    line = env_lines(None, f"/other{os.pathsep}{ours}")[0]
    assert line == f"export nnUNet_extTrainer={ours}{os.pathsep}/other"


def test_env_root_sets_the_three_nnunet_folders(tmp_path, capsys):
    assert main(["env", "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for var in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        assert f"export {var}={tmp_path / var}" in out and (tmp_path / var).is_dir()


@pytest.mark.parametrize("patch, features, expected_patch, expected_stages", [
    ((32, 64, 64), (8, 16, 32, 64), [32, 64, 64], 4),
    ((16, 32, 32), (8, 16, 32), [16, 32, 32], 3),
    ((18, 36, 36), (8, 16, 32, 64), [20, 40, 40], 4),  # rounded up to the total stride (4, 8, 8)
])
def test_tiny_configuration_shapes(tmp_path, patch, features, expected_patch, expected_stages):
    plans_file = write_plans(tmp_path / "nnUNetPlans.json", LARGE_FULLRES)
    config = add_tiny_configuration(plans_file, TinyPlan(patch_size=patch, features_per_stage=features))
    kwargs = config["architecture"]["arch_kwargs"]
    assert config["inherits_from"] == "3d_fullres" and config["patch_size"] == expected_patch
    assert kwargs["n_stages"] == expected_stages == len(kwargs["strides"]) == len(kwargs["kernel_sizes"])
    assert kwargs["features_per_stage"] == list(features[:expected_stages])
    total_stride = np.prod(np.array(kwargs["strides"]), axis=0)
    assert all(p % s == 0 for p, s in zip(config["patch_size"], total_stride))
    saved = json.loads(plans_file.read_text())["configurations"]
    assert saved["3d_tiny"] == config and saved["3d_fullres"] == LARGE_FULLRES


@pytest.mark.parametrize("source_patch, expected_patch", [
    ([64, 56, 48], [32, 56, 48]),  # lung crops: nnU-Net's patch narrower than the requested 64 in plane
    ([16, 32, 32], [16, 32, 32]),  # small images: every axis capped
    ([64, 128, 128], [32, 64, 64]),  # large images: the requested patch
])
def test_tiny_patch_is_never_larger_than_the_source_patch(tmp_path, source_patch, expected_patch):
    plans_file = write_plans(tmp_path / "nnUNetPlans.json", {**FULLRES, "patch_size": source_patch})
    config = add_tiny_configuration(plans_file, TinyPlan(patch_size=(32, 64, 64)))
    assert config["patch_size"] == expected_patch


def test_tiny_configuration_resolves_through_nnunet_and_builds_a_small_network(plans_file):
    from nnunetv2.utilities.get_network_from_plans import get_network_from_plans
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    add_tiny_configuration(plans_file)
    cm = PlansManager(str(plans_file)).get_configuration("3d_tiny")
    assert cm.data_identifier == "nnUNetPlans_3d_fullres" and cm.spacing == [3.0, 1.5, 1.5]
    net = get_network_from_plans(cm.network_arch_class_name, cm.network_arch_init_kwargs,
                                 cm.network_arch_init_kwargs_req_import, 2, 2, deep_supervision=False)
    n_params = sum(p.numel() for p in net.parameters())
    assert n_params < 400_000  # the planned 3d_fullres network has ~7 M


def test_tiny_plans_refuses_to_replace_or_invent(plans_file):
    add_tiny_configuration(plans_file)
    with pytest.raises(InputError, match="already has a configuration '3d_tiny'.*--overwrite"):
        add_tiny_configuration(plans_file)
    with pytest.raises(InputError, match="no configuration '2d'"):
        add_tiny_configuration(plans_file, TinyPlan(name="x", source="2d"))
    with pytest.raises(InputError, match="does not exist"):
        add_tiny_configuration(plans_file.with_name("missing.json"))


def trainer_arguments() -> dict:
    plans = {"dataset_name": "Dataset901_T", "plans_name": "nnUNetPlans",
             "original_median_spacing_after_transp": [3, 1.5, 1.5],
             "image_reader_writer": "SimpleITKIO", "transpose_forward": [0, 1, 2], "transpose_backward": [0, 1, 2],
             "configurations": {"3d_fullres": {**FULLRES, "nnunet_ts": {"budget": [25, 20, 5], "mirroring": False}}},
             "experiment_planner_used": "ExperimentPlanner",
             "label_manager": "LabelManager", "foreground_intensity_properties_per_channel": {},
             "continue_training": False}  # nnU-Net 2.8.1 run_training adds this key
    dataset_json = {"channel_names": {"0": "CT", "1": "noNorm"}, "labels": {"background": 0, "tumour": 1},
                    "numTraining": 2, "file_ending": ".nii.gz"}
    import torch
    return dict(plans=plans, configuration="3d_fullres", fold=0, dataset_json=dataset_json,
                device=torch.device("cpu"))


def test_our_trainers_are_found_by_nnunet_lookup(monkeypatch, tmp_path):
    from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name

    monkeypatch.setenv("nnUNet_extTrainer", str(trainers_dir()))
    for var in ("nnUNet_preprocessed", "nnUNet_results"):
        monkeypatch.setenv(var, str(tmp_path / var))
    for name in ("BaselineTrainer", "BoxTeacherTrainer", "TeacherStudentTrainer", "DualDecoderStudentTrainer"):
        cls = recursive_find_trainer_class_by_name(name)
        assert cls.__name__ == name
    cls = recursive_find_trainer_class_by_name("BaselineTrainer")  # the budget and mirroring from the plans
    trainer = cls(**trainer_arguments())
    assert (trainer.num_epochs, trainer.num_iterations_per_epoch, trainer.num_val_iterations_per_epoch) == (25, 20, 5)
    assert trainer.configure_rotation_dummyDA_mirroring_and_inital_patch_size()[3] is None
    assert trainer.inference_allowed_mirroring_axes is None
    assert set(trainer.my_init_kwargs) == {"plans", "configuration", "fold", "dataset_json", "device"}
    monkeypatch.delenv("nnUNet_extTrainer")
    with pytest.raises(RuntimeError, match="nnUNet_extTrainer"):
        recursive_find_trainer_class_by_name("BaselineTrainer")
