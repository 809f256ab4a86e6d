"""nnunet_ts.demo.design_choices and scripts/experiments/design_choice.py: a setting decided on validation."""
import importlib.util
import json
from pathlib import Path

import pytest

from nnunet_ts.demo import design_choices as dc
from nnunet_ts.errors import InputError

SCRIPT = Path(__file__).parents[1] / "scripts" / "experiments" / "design_choice.py"


def _script():
    spec = importlib.util.spec_from_file_location("design_choice", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _csv(path: Path, rows: dict[str, tuple[float, int]]) -> Path:
    path.write_text("case_id,dsc,n_gt_lesions\n" + "".join(f"{c},{d},{n}\n" for c, (d, n) in rows.items()))
    return path


def test_choices_are_parsed_and_checked():
    smooth = dc.parse_choice("dice_smooth=1e-5")
    assert (smooth.value, smooth.suffix, smooth.configuration(2)) == ("1e-05", "smooth_1e-05",
                                                                      "demo_student_seed2_smooth_1e-05")
    assert [m.key for m in smooth.models] == ["baseline", "so_student", "do_student"]  # one shared Dice
    box = dc.parse_choice("box_decoder=full")
    assert box.suffix == "box_full" and [m.key for m in box.models] == ["do_student"]
    assert dc.parse_choice("box_decoder=02").suffix == "box_2"
    for bad in ("box_decoder=0", "box_decoder=x", "dice_smooth=-1", "dice_smooth=nan", "dice_smooth=inf",
                "lr=0.1", "dice_smooth", "dice_smooth="):
        with pytest.raises(InputError, match="choice"):
            dc.parse_choice(bad)


def test_a_choice_changes_only_its_setting_in_the_inherited_configuration(tmp_path):
    from nnunet_ts.planners.plans_file import resolved_configuration

    plans_file = tmp_path / "nnUNetPlans.json"
    plans_file.write_text(json.dumps({"configurations": {
        "3d_fullres": {"patch_size": [32, 64, 64], "batch_size": 2},
        "demo_student_seed1": {"inherits_from": "3d_fullres",
                               "nnunet_ts": {"budget": [160, 25, 2], "seed": 1, "dice_smooth": 0.0}}}}))
    smooth = dc.parse_choice("dice_smooth=1e-5").add_to(plans_file, 1)
    box = dc.parse_choice("box_decoder=full").add_to(plans_file, 1)
    pinned = json.loads(plans_file.read_text())["configurations"]  # before the smooth's rewrite below
    plans = json.loads(plans_file.read_text())
    base = resolved_configuration(plans, "demo_student_seed1")
    changed = resolved_configuration(plans, smooth)
    assert changed["nnunet_ts"] == {**base["nnunet_ts"], "dice_smooth": 1e-5}
    assert {k: v for k, v in changed.items() if k != "nnunet_ts"} == \
        {k: v for k, v in base.items() if k != "nnunet_ts"} | {"inherits_from": "demo_student_seed1"}
    dual = resolved_configuration(plans, box)["nnunet_ts"]
    assert dual["box_decoder_convs"] is None and dual["dual_decoder"] is True
    assert {k: dual[k] for k in base["nnunet_ts"]} == base["nnunet_ts"]  # seed, budget, smooth inherited
    assert dc.parse_choice("dice_smooth=1e-5").add_to(plans_file, 1) == smooth  # a rerun rewrites it alike
    assert json.loads(plans_file.read_text())["configurations"] == pinned
    # the DO student's box decoder written in: the one the demo's DO trained with, whatever the code's default
    dc.parse_choice("dice_smooth=1e-5").add_to(plans_file, 1, box_decoder="1")
    pinned = resolved_configuration(json.loads(plans_file.read_text()), smooth)["nnunet_ts"]
    assert pinned == {**base["nnunet_ts"], "dice_smooth": 1e-5, "box_decoder_convs": 1}


def test_the_box_decoder_a_do_student_trained_with_is_read_from_its_log(tmp_path):
    fold = tmp_path / "fold_all"
    fold.mkdir()
    assert dc.trained_box_decoder(tmp_path) is None
    line = "2026-12-05 18:44:03.1: dual decoder: box_loss_weight (lambda) 1, segbox_mode 'per_lesion', box decoder " \
           "convolutions per stage {}, from the plans\n"
    (fold / "training_log_2026_12_5_18_44_03.txt").write_text(line.format(1))
    assert dc.trained_box_decoder(tmp_path) == "1"
    (fold / "training_log_2026_12_5_18_44_03.txt").write_text(line.format("as the segmentation decoder (full)"))
    assert dc.trained_box_decoder(tmp_path) == "full"


def test_validation_dsc_keeps_the_tumour_bearing_validation_cases(tmp_path):
    f = _csv(tmp_path / "e.csv", {"v1": (0.5, 1), "v2": (1.0, 0), "t1": (0.9, 1)})
    assert dc.tumour_dsc(f, ["v1", "v2"]) == {"v1": 0.5}  # tumour-free v2 and test case t1 left out
    with pytest.raises(InputError, match="v3"):
        dc.tumour_dsc(f, ["v1", "v3"])


def test_each_network_and_the_rule_compare_seed_means_per_case():
    reference = {"baseline": [{"a": 0.2, "b": 0.4}, {"a": 0.4, "b": 0.0}],
                 "SO": [{"a": 0.5, "b": 0.5}, {"a": 0.5, "b": 0.5}]}
    changed = {"baseline": [{"a": 0.6, "b": 0.4}, {"a": 0.6, "b": 0.4}],
               "SO": [{"a": 0.5, "b": 0.5}, {"a": 0.3, "b": 0.3}]}
    onsets = {"demo": {"baseline": [3, None], "SO": [1, 2]}, "changed": {"baseline": [5, 6], "SO": [4, None]}}
    s = dc.summarise(changed, reference, onsets)
    b = s["networks"]["baseline"]
    assert b["demo"]["per_seed"] == pytest.approx([30.0, 20.0]) and b["demo"]["mean"] == pytest.approx(25.0)
    # seeds averaged per case first: baseline a 0.3 -> 0.6, b 0.2 -> 0.4: +30 and +20 points
    assert b["difference"]["mean"] == pytest.approx(25.0) and 20 <= b["difference"]["low"] <= 30
    assert s["networks"]["SO"]["difference"]["mean"] == pytest.approx(-10.0)
    # the rule: per case the mean over the networks, (+30 - 10) / 2 and (+20 - 10) / 2
    assert s["pooled"]["mean"] == pytest.approx(7.5) and 5 <= s["pooled"]["low"] <= s["pooled"]["high"] <= 10
    assert s["replace"] is True
    lines = dc.table_lines(s, dc.parse_choice("dice_smooth=1e-5"), "0", "header")
    assert "| baseline | 0 | 30.0 | 20.0 | 25.0 | 3, never |" in lines
    assert "| SO | 1e-05 | 50.0 | 30.0 | 40.0 | 4, never |" in lines
    assert any(line.startswith("| mean over the networks (the rule) | +7.5 |") for line in lines)
    assert lines[-1] == "Decision (the rule): dice_smooth=1e-05 replaces the demo's setting."


def test_the_demos_setting_stays_unless_the_change_is_better_beyond_the_ci():
    reference = {"DO": [{"a": 0.5, "b": 0.5, "c": 0.5}]}
    changed = {"DO": [{"a": 0.9, "b": 0.1, "c": 0.6}]}  # +3.3 on average, CI includes 0
    s = dc.summarise(changed, reference, {"demo": {"DO": [1]}, "changed": {"DO": [2]}})
    assert s["pooled"]["mean"] > 0 and s["pooled"]["low"] < 0 and s["replace"] is False
    lines = dc.table_lines(s, dc.parse_choice("box_decoder=full"), "1", "header")
    assert not any("mean over the networks" in line for line in lines)  # one network: its row is the rule
    assert lines[-1].startswith("Decision (the rule): the demo's setting (box_decoder=1) stays")


def test_link_folders_are_made_whole(tmp_path):
    (tmp_path / "a.nii.gz").write_text("x")
    (tmp_path / "links.partial").mkdir()  # left by an interrupted run
    folder = dc.link_folder(tmp_path / "links", {"b.nii.gz": tmp_path / "a.nii.gz"})
    assert [p.name for p in folder.iterdir()] == ["b.nii.gz"] and (folder / "b.nii.gz").read_text() == "x"
    assert not (tmp_path / "links.partial").exists()


def test_the_script_names_a_folder_that_is_no_demo_and_exits_1(tmp_path, capsys):
    assert _script().main([str(tmp_path / "out"), "--demo", str(tmp_path), "--choice", "dice_smooth=1e-5"]) == 1
    assert "demo.json not found" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()  # nothing written


def test_the_script_rejects_a_bad_choice_as_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        _script().main([str(tmp_path / "out"), "--demo", str(tmp_path), "--choice", "box_decoder=0"])
    assert exit_.value.code == 2 and "box decoder is 'full'" in capsys.readouterr().err


def _demo_folder(tmp_path: Path, validation: list[str]) -> Path:
    from nnunet_ts.demo.config import MODEL, Cohort, DemoConfig, Run
    from nnunet_ts.demo.pipeline import SETTINGS_FILE, Demo
    from nnunet_ts.demo.sets import write_sets

    config = DemoConfig("scarce", "cpu", Cohort(n_strong=3, n_weak=3, n_test=2, n_validation=1), train_seeds=2)
    demo = Demo(config, tmp_path / "demo")
    demo.out.mkdir()
    (demo.out / SETTINGS_FILE).write_text(json.dumps({"settings": demo.settings()}))
    write_sets(demo.sets_file(), {"validation": validation, "test": ["t1"]}, 0, 0.3)
    (demo.results / "Dataset704_DemoPseudo").mkdir(parents=True)
    fold = demo.model_folder(Run(MODEL["do_student"], 0)) / "fold_all"
    fold.mkdir(parents=True)
    (fold / "training_log_1.txt").write_text("dual decoder: box decoder convolutions per stage 1, from the plans")
    return demo.out


def test_a_finished_demo_is_read_back_with_its_settings_and_seeds_are_checked(tmp_path):
    folder = _demo_folder(tmp_path, ["v1"])
    demo = dc.stored_demo(folder)
    assert demo.config.train_seeds == 2 and demo.config.student_dice_smooth == 0.0
    assert json.loads((folder / "demo.json").read_text())["settings"] == json.loads(json.dumps(demo.settings()))
    experiment = dc.ChoiceExperiment(tmp_path / "out", folder, "cpu", 1)
    assert experiment.seeds == [0, 1] and experiment.box_decoder == "1"
    with pytest.raises(InputError, match="seeds 0..1; --seeds 2 asks for others"):
        dc.ChoiceExperiment(tmp_path / "out", folder, "cpu", 1, seeds=[2])
    with pytest.raises(InputError, match="no evaluated DO student of training seed 0"):
        experiment.run(dc.parse_choice("box_decoder=full"))
    with pytest.raises(InputError, match="already trains with box_decoder=1; choose another value"):
        experiment.run(dc.parse_choice("box_decoder=1"))
    with pytest.raises(InputError, match="no evaluated baseline"):
        experiment.run(dc.parse_choice("dice_smooth=1e-5"))


def test_a_demo_whose_do_log_names_no_box_decoder_is_refused(tmp_path):
    folder = _demo_folder(tmp_path, ["v1"])
    for log in folder.rglob("training_log_*.txt"):
        log.write_text("")
    with pytest.raises(InputError, match="names no box decoder"):
        dc.ChoiceExperiment(tmp_path / "out", folder, "cpu", 1)


def test_a_demo_without_validation_cases_is_refused(tmp_path):
    folder = _demo_folder(tmp_path, [])
    with pytest.raises(InputError, match="names no validation case"):
        dc.ChoiceExperiment(tmp_path / "out", folder, "cpu", 1)


@pytest.mark.parametrize("content, message", [
    ("{not json", "is not a demo settings file"),
    ('{"other": 1}', "is not a demo settings file"),
    ('{"settings": {"config": {"scenario": "scarce"}}}', "written by another version of the demo"),
    ('{"settings": {"config": {"scenario": "scarce", "cohort": {}, "unknown_setting": 1}}}',
     "written by another version of the demo"),
])
def test_a_damaged_or_foreign_demo_settings_file_gets_one_clear_error(tmp_path, content, message):
    folder = _demo_folder(tmp_path, ["v1"])
    (folder / "demo.json").write_text(content)
    with pytest.raises(InputError, match=message) as error:
        dc.ChoiceExperiment(tmp_path / "out", folder, "cpu", 1)
    assert str(folder / "demo.json") in str(error.value)
    assert not (tmp_path / "out").exists()  # nothing written
