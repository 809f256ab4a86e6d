"""The dual-decoder configuration (``nnunet_ts plan-dual``): written, inherited through nnU-Net, read by
the trainer, and refused with one clear error on bad input. No data and no training: plans files only.
"""
import json
import math

import pytest
import torch

from nnunet_ts.boxes.segbox import SEGBOX_MODES
from nnunet_ts.cli.main import main
from nnunet_ts.cli.plan_dual import SEGBOX_CHOICES
from nnunet_ts.errors import InputError
from nnunet_ts.planners.dual_decoder_plans import (
    DualDecoderSettings,
    add_dual_decoder_configuration,
    dual_decoder_settings,
)
from tests.factories.plans import FULLRES

DATASET = "Dataset901_T"
DATASET_JSON = {"channel_names": {"0": "CT"}, "labels": {"background": 0, "tumour": 1}, "numTraining": 0,
                "file_ending": ".nii.gz"}


@pytest.fixture
def plans_file(tmp_path):
    folder = tmp_path / "nnUNet_preprocessed" / DATASET
    folder.mkdir(parents=True)
    path = folder / "nnUNetPlans.json"
    path.write_text(json.dumps({"dataset_name": DATASET, "plans_name": "nnUNetPlans",
                                "configurations": {"3d_fullres": FULLRES}}))
    return path


def test_the_configuration_inherits_everything_and_carries_our_settings(plans_file):
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    name, config = add_dual_decoder_configuration(plans_file, settings=DualDecoderSettings(0.25, "per_slice"))
    assert name == "3d_fullres_dual"
    saved = json.loads(plans_file.read_text())["configurations"]
    assert saved == {"3d_fullres": FULLRES, name: config}
    assert config == {"inherits_from": "3d_fullres",
                      "nnunet_ts": {"dual_decoder": True, "box_loss_weight": 0.25, "segbox_mode": "per_slice",
                                    "box_decoder_convs": None}}  # the default: the paper's full copy
    resolved = PlansManager(str(plans_file)).get_configuration(name)
    for key in ("data_identifier", "patch_size", "spacing", "batch_size", "architecture"):
        assert resolved.configuration[key] == FULLRES[key]  # same preprocessed data and network
    assert dual_decoder_settings(resolved.configuration, DualDecoderSettings(), "x") == \
        (DualDecoderSettings(0.25, "per_slice"), True)

    # another name, then --overwrite replaces it
    add_dual_decoder_configuration(plans_file, name="mine", settings=DualDecoderSettings(2.0))
    _, again = add_dual_decoder_configuration(plans_file, name="mine", overwrite=True)
    assert again["nnunet_ts"]["box_loss_weight"] == 1.0


@pytest.mark.parametrize("stored, expected", [
    ({}, (DualDecoderSettings(0.5, "box3d"), False)),  # no entry: the trainer's defaults
    ({"nnunet_ts": {"box_loss_weight": 0}}, (DualDecoderSettings(0, "box3d"), True)),
    ({"nnunet_ts": {"segbox_mode": "per_lesion"}}, (DualDecoderSettings(0.5, "per_lesion"), True)),
])
def test_settings_fall_back_to_the_trainer_defaults_key_by_key(stored, expected):
    assert dual_decoder_settings(stored, DualDecoderSettings(0.5, "box3d"), "x") == expected


@pytest.mark.parametrize("stored, match", [
    ({"nnunet_ts": {"box_loss_weight": -1}}, "box_loss_weight must be a finite number >= 0, got -1"),
    ({"nnunet_ts": {"box_loss_weight": math.nan}}, "box_loss_weight must be a finite number"),
    ({"nnunet_ts": {"box_loss_weight": "1"}}, "box_loss_weight must be a finite number"),
    ({"nnunet_ts": {"segbox_mode": "circle"}}, "segbox_mode must be one of per_lesion, per_slice, box3d"),
    ({"nnunet_ts": {"box_decoder_convs": 0}}, "box_decoder_convs must be an integer >= 1 or null"),
    ({"nnunet_ts": {"box_decoder_convs": 1.5}}, "box_decoder_convs must be an integer"),
    ({"nnunet_ts": 1.0}, "must be a JSON object"),
])
def test_bad_settings_in_plans_name_the_place_and_the_fix(stored, match):
    with pytest.raises(InputError, match=match) as error:
        dual_decoder_settings(stored, DualDecoderSettings(), "configuration 'c' of P")
    assert str(error.value).startswith("configuration 'c' of P: ") and "plan-dual" in str(error.value)


@pytest.mark.parametrize("kwargs, match", [
    ({"source": "2d"}, r"has no configuration '2d' \(has: 3d_fullres\); plan it first"),
    ({"name": "3d_fullres"}, "needs its own name"),
    ({"settings": DualDecoderSettings(-0.5)}, "box_loss_weight must be a finite number >= 0"),
    ({"settings": DualDecoderSettings(1.0, "circle")}, "segbox_mode must be one of"),
])
def test_add_refuses_bad_input_and_leaves_the_plans_alone(plans_file, kwargs, match):
    before = plans_file.read_text()
    with pytest.raises(InputError, match=match):
        add_dual_decoder_configuration(plans_file, **kwargs)
    assert plans_file.read_text() == before


def test_add_refuses_a_missing_file_and_an_existing_name(plans_file):
    with pytest.raises(InputError, match=r"missing.json does not exist; run nnUNetv2_plan_and_preprocess"):
        add_dual_decoder_configuration(plans_file.with_name("missing.json"))
    add_dual_decoder_configuration(plans_file)
    with pytest.raises(InputError, match=f"{plans_file} already has a configuration '3d_fullres_dual'; "
                                         f"pass --overwrite"):
        add_dual_decoder_configuration(plans_file)


def test_plan_dual_command(plans_file, capsys):
    preprocessed = str(plans_file.parent.parent)
    assert SEGBOX_CHOICES == SEGBOX_MODES
    assert main(["plan-dual", "-d", "901", "--preprocessed", preprocessed, "--box-loss-weight", "0.5",
                 "--segbox-mode", "box3d"]) == 0
    out = capsys.readouterr().out
    assert "added configuration '3d_fullres_dual'" in out and "nnUNetv2_train 901 3d_fullres_dual FOLD" in out
    ours = json.loads(plans_file.read_text())["configurations"]["3d_fullres_dual"]["nnunet_ts"]
    assert ours == {"dual_decoder": True, "box_loss_weight": 0.5, "segbox_mode": "box3d", "box_decoder_convs": None}
    for given, stored, said in (("1", 1, "per stage 1"), ("full", None, "as the segmentation decoder (full)"),
                                ("3", 3, "per stage 3")):
        assert main(["plan-dual", "-d", "901", "--preprocessed", preprocessed, "--box-decoder-convs", given,
                     "--overwrite"]) == 0
        assert said in capsys.readouterr().out
        assert json.loads(plans_file.read_text())["configurations"]["3d_fullres_dual"]["nnunet_ts"][
            "box_decoder_convs"] == stored
    with pytest.raises(SystemExit):
        main(["plan-dual", "-d", "901", "--preprocessed", preprocessed, "--box-decoder-convs", "0"])
    assert "0 must be >= 1" in capsys.readouterr().err

    assert main(["plan-dual", "-d", "901", "--preprocessed", preprocessed]) == 3
    assert "--overwrite" in capsys.readouterr().err
    assert main(["plan-dual", "-d", "902", "--preprocessed", preprocessed]) == 3
    assert "no Dataset902_* in" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        main(["plan-dual", "-d", "901", "--box-loss-weight", "-1"])
    assert exit_.value.code == 2
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        main(["plan-dual", "--help"])
    assert exit_.value.code == 0
    assert "nnUNetv2_train 502 3d_fullres_dual 0 -tr DualDecoderStudentTrainer" in capsys.readouterr().out


def _trainer(plans_file, configuration: str):
    from nnunet_ts.trainers.dual_decoder_student_trainers import DualDecoderStudentTrainer

    plans = {**json.loads(plans_file.read_text()), "continue_training": False}
    return DualDecoderStudentTrainer(plans, configuration, 0, DATASET_JSON, device=torch.device("cpu"))


def test_the_trainer_takes_lambda_and_the_segbox_form_from_the_configuration(plans_file, tmp_path, monkeypatch):
    from nnunet_ts.trainers.dual_decoder_student_trainers import DualDecoderStudentTrainer

    monkeypatch.setenv("nnUNet_results", str(tmp_path / "nnUNet_results"))
    monkeypatch.setenv("nnUNet_preprocessed", str(plans_file.parent.parent))
    add_dual_decoder_configuration(plans_file, settings=DualDecoderSettings(0.25, "per_slice"))
    trainer = _trainer(plans_file, "3d_fullres_dual")
    assert (trainer.box_loss_weight, trainer.segbox_mode) == (0.25, "per_slice")
    assert (DualDecoderStudentTrainer.box_loss_weight, DualDecoderStudentTrainer.segbox_mode) == (1.0, "per_lesion")
    assert "box_loss_weight (lambda) 0.25, segbox_mode 'per_slice', box decoder convolutions per stage as the " \
        "segmentation decoder (full), from the plans" in open(trainer.log_file).read()
    assert trainer._build_loss().box_weight == 0.25


def test_the_box_decoder_size_from_the_configuration_for_training_and_prediction(plans_file, tmp_path,
                                                                                  monkeypatch):
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    from nnunet_ts.trainers.dual_decoder_student_trainers import DualDecoderStudentTrainer

    monkeypatch.setenv("nnUNet_results", str(tmp_path / "nnUNet_results"))
    monkeypatch.setenv("nnUNet_preprocessed", str(plans_file.parent.parent))
    add_dual_decoder_configuration(plans_file, settings=DualDecoderSettings(box_decoder_convs=1))
    assert "convolutions per stage 1, from the plans" in open(_trainer(plans_file, "3d_fullres_dual").log_file).read()
    # the predictor's path: the class method alone, from the plans (no entry: the class default, the full copy)
    plans = PlansManager(str(plans_file))
    for name, box_convs in (("3d_fullres_dual", 1), ("3d_fullres", 2)):
        network = DualDecoderStudentTrainer.build_network_architecture(
            plans, plans.get_configuration(name), 1, 2, enable_deep_supervision=True)
        assert {len(stage.convs) for stage in network.box_decoder.stages} == {box_convs}
        assert {len(stage.convs) for stage in network.decoder.stages} == {2}
        assert not any(type(m) is torch.nn.Conv3d for m in network.modules())  # cpu_conv, both decoders

    plain = _trainer(plans_file, "3d_fullres")  # no entry: the class attributes
    assert (plain.box_loss_weight, plain.segbox_mode) == (1.0, "per_lesion")
    assert "from the trainer defaults" in open(plain.log_file).read()

    plans = json.loads(plans_file.read_text())
    plans["configurations"]["3d_fullres_dual"]["nnunet_ts"]["box_loss_weight"] = -2
    plans_file.write_text(json.dumps(plans))
    with pytest.raises(InputError, match=r"configuration '3d_fullres_dual' of nnUNetPlans \(Dataset901_T\): "
                                         r"box_loss_weight must be a finite number >= 0, got -2"):
        _trainer(plans_file, "3d_fullres_dual")
