"""Every trainer class in ``trainers/``: found by nnU-Net's lookup, built, one training step, and its
settings read from the configuration (budget, mirroring, Dice smooth, sampling); old names refused.

One table: (trainer, dataset, the configuration's ``"nnunet_ts"`` settings, what the trainer must do).
"""
from __future__ import annotations

import importlib.util
import inspect
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from nnunet_ts.errors import InputError
from nnunet_ts.nnunet.paths import trainers_dir
from tests.conftest import DUAL_ID, DUAL_NAME, STUDENT_ID, TEACHER_ID
from tests.factories.trainers import make_trainer, trainer_class

pytestmark = pytest.mark.xdist_group("planned_datasets")

NNUNET_BUDGET = (1000, 250, 50)
TINY = {"budget": [2, 4, 2], "mirroring": False}


@dataclass(frozen=True)
class Row:
    trainer: str
    dataset: str  # "teacher", "student" or "dual"
    settings: dict
    budget: tuple = NNUNET_BUDGET
    mirroring: bool = True
    smooth: float = 1e-5
    foreground: float = 0.33


ROWS = [
    Row("BaselineTrainer", "student", {}),
    Row("BaselineTrainer", "student", {**TINY, "dice_smooth": 0}, (2, 4, 2), False, 0.0),
    Row("CTOnlyTeacherTrainer", "student", {"budget": [25, 20, 5], "mirroring": False}, (25, 20, 5), False,
        foreground=0.9),
    Row("BoxTeacherTrainer", "teacher", {}, foreground=0.9),
    Row("BoxTeacherTrainer", "teacher", {**TINY, "box_perturbation": 0, "dice_smooth": 0}, (2, 4, 2), False, 0.0,
        0.9),
    Row("TeacherStudentTrainer", "student", {}),
    Row("TeacherStudentTrainer", "student", {"dice_smooth": 0}, smooth=0.0),
    Row("TeacherStudentTrainer", "student", {**TINY, "strong_fraction": 0.5}, (2, 4, 2), False),
    Row("TeacherStudentBaldeonCalistoTrainer", "student", {}),
    Row("DualDecoderStudentTrainer", "dual", {}),
    Row("DualDecoderStudentTrainer", "dual", {**TINY, "dice_smooth": 0}, (2, 4, 2), False, 0.0),
    Row("SunStudentTrainer", "dual", {}),
    Row("SunStudentTrainer", "dual", {**TINY, "dice_smooth": 0}, (2, 4, 2), False, 0.0),
]


def _classes_in_trainers_folder() -> set[str]:
    """Names of the nnU-Net trainer classes each module of ``trainers/`` defines, as nnU-Net imports them."""
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

    names = set()
    for path in sorted(trainers_dir().glob("*.py")):
        spec = importlib.util.spec_from_file_location(f"_trainers_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        names |= {n for n, c in vars(module).items() if inspect.isclass(c) and issubclass(c, nnUNetTrainer)
                  and c.__module__ == module.__name__}
    return names


@pytest.fixture
def lookup(monkeypatch, tmp_path):
    monkeypatch.setenv("nnUNet_extTrainer", str(trainers_dir()))
    monkeypatch.setenv("nnUNet_n_proc_DA", "0")
    for var in ("nnUNet_preprocessed", "nnUNet_results"):
        monkeypatch.setenv(var, str(tmp_path / var))


@pytest.fixture
def preprocessed(request, monkeypatch):
    """``preprocessed(kind)``: the planned dataset folder of a kind, this process's nnU-Net pointed at it."""
    def folder(kind: str) -> Path:
        if kind == "teacher":
            root, name = request.getfixturevalue("teacher_root"), f"Dataset{TEACHER_ID}_BoxT"
        elif kind == "student":
            root, name = request.getfixturevalue("student_root"), f"Dataset{STUDENT_ID}_Soft"
        else:
            root, name = request.getfixturevalue("dual_root"), f"Dataset{DUAL_ID}_{DUAL_NAME}"
        monkeypatch.setenv("nnUNet_preprocessed", str(root / "nnUNet_preprocessed"))
        monkeypatch.setenv("nnUNet_raw", str(root / "nnUNet_raw"))
        return root / "nnUNet_preprocessed" / name
    return folder


def test_the_table_covers_every_trainer_class():
    from nnunet_ts.trainers.renamed_trainers import RENAMED

    assert _classes_in_trainers_folder() == {row.trainer for row in ROWS} | set(RENAMED)


def _dice_smooth(trainer) -> float:
    if hasattr(trainer, "student_loss"):
        return trainer.student_loss.dice.smooth
    return trainer.loss.loss.dc.smooth  # nnU-Net's DC_and_CE_loss in its deep-supervision wrapper


@pytest.mark.parametrize("row", ROWS, ids=lambda r: f"{r.trainer}-{'+'.join(r.settings) or 'defaults'}")
def test_every_trainer_is_found_built_and_steps(row, lookup, preprocessed):
    cls = trainer_class(row.trainer)
    assert cls.__name__ == row.trainer
    trainer = make_trainer(cls, preprocessed(row.dataset), settings=row.settings, replace_settings=True)
    assert set(trainer.my_init_kwargs) == {"plans", "configuration", "fold", "dataset_json", "device"}
    assert (trainer.num_epochs, trainer.num_iterations_per_epoch, trainer.num_val_iterations_per_epoch) == row.budget
    assert trainer.oversample_foreground_percent == row.foreground
    assert _dice_smooth(trainer) == row.smooth
    if row.trainer in ("DualDecoderStudentTrainer", "SunStudentTrainer"):  # the box loss's Dice shares the smooth
        assert trainer.loss.box_loss.loss.dice.smooth == row.smooth
    if row.trainer == "BoxTeacherTrainer":
        assert (trainer.box_perturbation is None) == (row.settings.get("box_perturbation") == 0)
    assert not any(type(m) is torch.nn.Conv3d for m in trainer.network.modules())  # oneDNN for single patches
    trainer.dataloader_train, trainer.dataloader_val = trainer.get_dataloaders()
    assert (trainer.inference_allowed_mirroring_axes is not None) == row.mirroring
    trainer.network.train()
    assert np.isfinite(trainer.train_step(next(trainer.dataloader_train))["loss"])


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize("name, kind", [("BaselineTrainer", "student"), ("BoxTeacherTrainer", "teacher"),
                                        ("TeacherStudentTrainer", "student"), ("DualDecoderStudentTrainer", "dual")])
def test_every_trainer_trains_and_predicts_in_either_cpu_precision(name, kind, precision, lookup, preprocessed,
                                                                   monkeypatch):
    monkeypatch.setenv("NNUNET_TS_PRECISION", precision)  # fp32: as on a CPU without bf16 instructions
    trainer = make_trainer(trainer_class(name), preprocessed(kind), settings=TINY)
    assert getattr(trainer.network, "_nnunet_ts_cpu_precision", False) == (precision == "bf16")
    # weights whose two layouts differ (1 input channel or a 1x1x1 kernel is both at once)
    convs = [m for m in trainer.network.modules() if isinstance(m, torch.nn.Conv3d)
             and m.weight.shape[1] > 1 and m.weight.shape[2:].numel() > 1]
    channels_last = [c.weight.is_contiguous(memory_format=torch.channels_last_3d) for c in convs]
    assert convs
    assert all(channels_last) if precision == "bf16" else not any(channels_last)
    trainer.dataloader_train, trainer.dataloader_val = trainer.get_dataloaders()
    trainer.network.train()
    assert np.isfinite(trainer.train_step(next(trainer.dataloader_train))["loss"])
    assert all(p.dtype == torch.float32 for p in trainer.network.parameters())
    # the predictor's path: the network rebuilt through the trainer class, one tile in eval mode
    network = type(trainer).build_network_architecture(
        trainer.plans_manager, trainer.configuration_manager, trainer.num_input_channels,
        trainer.label_manager.num_segmentation_heads, enable_deep_supervision=False)
    network.load_state_dict(trainer.network.state_dict())
    network.eval()
    with torch.inference_mode():
        logits = network(torch.zeros(1, trainer.num_input_channels, *trainer.configuration_manager.patch_size))
    assert logits.dtype == torch.float32 and logits.is_contiguous() and torch.isfinite(logits).all()


def test_settings_errors_name_the_configuration_and_the_fix(lookup, preprocessed):
    cls = trainer_class("BaselineTrainer")
    with pytest.raises(InputError, match=r"configuration '3d_tiny' .* unknown 'nnunet_ts' setting\(s\) budjet"):
        make_trainer(cls, preprocessed("student"), settings={"budjet": [1, 1, 1]}, initialize=False)
    with pytest.raises(InputError, match="budget must be .* budget-config"):
        make_trainer(cls, preprocessed("student"), settings={"budget": [0, 1, 1]}, initialize=False)
    with pytest.raises(InputError, match="smooth 1e-05 or 0"):
        make_trainer(cls, preprocessed("student"), settings={"dice_smooth": 0.5})


def test_plans_of_the_older_budget_key_train_as_before(lookup, preprocessed):
    pre = preprocessed("student")
    plans = json.loads((pre / "nnUNetPlans.json").read_text())
    plans["continue_training"] = False
    plans["configurations"]["3d_tiny"]["nnunet_ts_budget"] = [3, 5, 1]
    trainer = trainer_class("BaselineTrainer")(plans, "3d_tiny", "all", json.loads((pre / "dataset.json").read_text()),
                                               device=torch.device("cpu"))
    assert (trainer.num_epochs, trainer.num_iterations_per_epoch, trainer.num_val_iterations_per_epoch) == (3, 5, 1)
    assert not trainer.settings.mirroring and trainer.settings.final_validation == "except_fold_all"


@pytest.mark.parametrize("old, new, options", [
    ("TinyBudgetTrainer", "BaselineTrainer", "--epochs 2 --iterations 4"),
    ("BoxTeacherExactBoxTrainer", "BoxTeacherTrainer", "--box-perturbation 0"),
    ("TeacherStudentPlansBudgetTrainer_noSmooth", "TeacherStudentTrainer", "--dice-smooth 0"),
    ("DualDecoderStudentShortBudgetTrainer", "DualDecoderStudentTrainer", "--epochs 25 --iterations 20"),
])
def test_old_trainer_names_name_their_replacement_and_still_build_networks(old, new, options, lookup,
                                                                          preprocessed):
    cls = trainer_class(old)
    assert new in [c.__name__ for c in cls.__mro__]
    kind = {"Box": "teacher", "Dual": "dual"}.get(old[:4], "student")
    with pytest.raises(InputError, match=f"trainer {old} was replaced: train {new} on .*{options}"):
        make_trainer(cls, preprocessed(kind), initialize=False)
    # a checkpoint trained under the old name: nnU-Net's predictor builds its network through the class
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    plans = PlansManager(str(preprocessed(kind) / "nnUNetPlans.json"))
    channels = 2 if kind == "teacher" else 1
    assert isinstance(cls.build_network_architecture(plans, plans.get_configuration("3d_tiny"), channels, 2, False),
                      torch.nn.Module)


@pytest.mark.parametrize("world_size, batch_size", [(2, 2), (2, 4), (4, 4)])
def test_foreground_sampling_rate_is_the_configured_one_on_every_ddp_rank(world_size, batch_size, lookup,
                                                                         preprocessed, monkeypatch):
    # nnU-Net's DDP split makes the rate per rank deterministic (0.9 on 2 ranks x 1 sample: 0.0 and 1.0)
    import torch.distributed as dist

    trainer = make_trainer(trainer_class("BoxTeacherTrainer"), preprocessed("teacher"), initialize=False)
    trainer.configuration_manager.configuration["batch_size"] = batch_size
    trainer.is_ddp = True
    monkeypatch.setattr(dist, "get_world_size", lambda *a, **k: world_size)
    for rank in range(world_size):
        monkeypatch.setattr(dist, "get_rank", lambda *a, _rank=rank, **k: _rank)
        trainer.oversample_foreground_percent = trainer.settings.foreground_sampling
        trainer._set_batch_size_and_oversample()
        assert trainer.batch_size == batch_size // world_size
        assert trainer.oversample_foreground_percent == 0.9 and trainer.probabilistic_oversampling


def test_the_predictors_lookup_finds_our_trainers_directly_and_is_restored_after_the_block():
    import nnunetv2.inference.predict_from_raw_data as predictor_module

    from nnunet_ts.nnunet.paths import our_trainer_class, trainers_findable
    from nnunet_ts.trainers.box_teacher_trainers import BoxTeacherTrainer

    stock = predictor_module.recursive_find_trainer_class_by_name
    with trainers_findable():
        assert predictor_module.recursive_find_trainer_class_by_name("BoxTeacherTrainer") is BoxTeacherTrainer
        assert predictor_module.recursive_find_trainer_class_by_name("nnUNetTrainer").__name__ == "nnUNetTrainer"
    assert predictor_module.recursive_find_trainer_class_by_name is stock
    assert our_trainer_class("NoSuchTrainer") is None
