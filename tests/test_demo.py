"""`nnunet_ts demo`: presets, the budget configuration, report helpers, and the whole demo at a
minimal size (a few tiny cases, a few iterations) through the stock commands, resumed once."""
import json
import math
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from nnunet_ts.cli.main import main
from nnunet_ts.demo.config import MODELS, Budget, Cohort, DemoConfig, preset, runs
from nnunet_ts.demo.figures import choose_panel_cases
from nnunet_ts.demo.plans_check import plan_differences
from nnunet_ts.demo.report import cell, comparison_lines, compute_results, table_lines
from nnunet_ts.demo.sets import split_held_out
from nnunet_ts.errors import InputError
from nnunet_ts.io.manifest import CaseRecord
from nnunet_ts.planners.training_settings import TrainingSettings, add_training_configuration
from tests.factories.stock import requires_nnunet


def test_presets_and_budget_override():
    scarce, vast = preset("scarce", "cpu"), preset("vast", "cpu")
    assert scarce.cohort.n_weak > 3 * scarce.cohort.n_strong  # few strong, many weak
    assert 0.5 <= vast.cohort.n_weak / vast.cohort.n_strong <= 2  # similar sizes
    assert scarce.network == "3d_tiny"
    assert preset("scarce", "gpu").network == "3d_fullres"
    for config in (scarce, vast, preset("scarce", "gpu")):  # enough test cases for the CIs, a validation set apart
        assert config.cohort.n_test >= 40 and config.cohort.n_validation >= 20 and config.lung_crops
    changed = scarce.with_budget(epochs=3)
    assert (changed.teacher_budget.epochs, changed.student_budget.epochs) == (3, 3)
    assert changed.student_budget.iterations == scarce.student_budget.iterations
    longer = scarce.with_budget(student_epochs=160)  # the compared networks alone, still one budget
    assert (longer.teacher_budget, longer.student_budget.epochs) == (scarce.teacher_budget, 160)
    assert scarce.with_budget(epochs=3, student_epochs=7).teacher_budget.epochs == 3
    with pytest.raises(ValueError):
        preset("plenty", "cpu")
    with pytest.raises(ValueError):
        Cohort(1, 4, 2)
    with pytest.raises(ValueError, match="train_seeds"):
        replace(scarce, train_seeds=0)


def test_runs_train_the_compared_networks_once_per_seed_and_the_teachers_once():
    trainings = runs(replace(preset("scarce", "cpu"), train_seeds=3))
    per_network = {m.key: [r.seed for r in trainings if r.model is m] for m in MODELS}
    assert per_network == {"box_teacher": [0], "ct_only_teacher": [0], "baseline": [0, 1, 2],
                           "so_student": [0, 1, 2], "do_student": [0, 1, 2]}
    assert trainings[-1].configuration == "demo_student_seed2" and trainings[0].configuration == "demo_teacher_seed0"
    assert len({r.name for r in trainings}) == len(trainings)


def test_steps_with_seeds_and_crops(tmp_path):
    from nnunet_ts.demo.pipeline import Demo

    config = replace(preset("scarce", "cpu"), train_seeds=2)
    names = [step.name for step in Demo(config, tmp_path).steps()]
    assert names[:3] == ["synth", "sets", "lung_crops"]
    for seed in (0, 1):  # each compared network: a configuration, a training, a prediction per seed
        for key in ("baseline", "so_student", "do_student"):
            assert {f"train_{key}_seed{seed}", f"predict_{key}_seed{seed}", f"paste_{key}_seed{seed}"} <= set(names)
        assert {f"budget_702_demo_student_seed{seed}", f"budget_704_demo_student_seed{seed}"} <= set(names)
    assert "train_box_teacher_seed1" not in names and "budget_702_demo_teacher_seed0" in names
    # the plans are checked after the last configuration and before the first compared training
    assert names.index("budget_704_demo_student_seed1") < names.index("check_plans") < names.index(
        "train_so_student_seed0")
    assert sum(n.startswith("train_") for n in names) == 2 + 3 * 2
    whole = [step.name for step in Demo(replace(config, lung_crops=False), tmp_path).steps()]
    assert "lung_crops" not in whole and not any(n.startswith("paste_") for n in whole)


def test_held_out_patients_split_into_validation_and_test():
    records = [CaseRecord(case, patient, subset, Path(f"{case}.nii.gz")) for case, patient, subset in [
        ("a1", "pa", "test"), ("a2", "pa", "test"), ("b", "pb", "test"), ("c", "pc", "test"), ("d", "pd", "test"),
        ("s", "ps", "strong"), ("w", "pw", "weak")]]
    split = split_held_out(records, validation_fraction=0.5, seed=0)
    # 4 held-out patients, half of them (2) for validation; a patient's cases stay together
    assert sorted(split["validation"] + split["test"]) == ["a1", "a2", "b", "c", "d"]
    assert ("a1" in split["validation"]) == ("a2" in split["validation"])
    assert len({c[0] for c in split["validation"]}) == 2
    assert split == split_held_out(list(reversed(records)), 0.5, seed=0)  # the manifest's order does not matter
    assert split_held_out(records, 0.0)["validation"] == []
    assert split_held_out(records, 0.99)["test"]  # at least one test patient
    with pytest.raises(ValueError, match="no held-out"):
        split_held_out(records[-2:], 0.5)


def test_plan_differences_name_every_differing_entry():
    base = {"dataset_name": "Dataset702_S", "foreground_intensity_properties_per_channel": {"0": {"mean": 1}},
            "configurations": {"3d_fullres": {"spacing": [2, 1, 1], "patch_size": [32, 64, 64],
                                              "normalization_schemes": ["CTNormalization"]},
                               "demo": {"inherits_from": "3d_fullres", "nnunet_ts": {"budget": [1, 2, 1]}}}}
    moved = json.loads(json.dumps(base)) | {"dataset_name": "Dataset704_P"}
    assert plan_differences(base, moved, ["3d_fullres", "demo"]) == []  # nnU-Net's move: only the name differs
    moved["configurations"]["3d_fullres"]["spacing"] = [3, 1, 1]
    moved["configurations"]["demo"]["nnunet_ts"]["seed"] = 1
    assert plan_differences(base, moved, ["3d_fullres", "demo"]) == [
        "configurations.3d_fullres.spacing[0]", "configurations.demo.nnunet_ts.seed",
        "configurations.demo.spacing[0]"]  # the child inherits the spacing
    teacher = json.loads(json.dumps(base))
    teacher["foreground_intensity_properties_per_channel"]["1"] = {"mean": 0}
    teacher["configurations"]["3d_fullres"]["normalization_schemes"].append("NoNormalization")
    assert plan_differences(teacher, base, ["demo"], channels=1) == []
    assert plan_differences(teacher, base, ["demo"]) != []


def _per_case(dsc_by_seed: dict, fp_free=0.0):
    """Rows of cases t1, t2, t3 (tumour) and free (tumour-free) for each seed's DSCs of t1..t3."""
    def row(dsc, volume, fp=0.0):
        found = 1.0 if dsc > 0 else 0.0
        return {"dsc": dsc, "dsc_tp": dsc if found else math.nan, "precision": found if found else math.nan,
                "recall": found, "f1": found, "fp": fp, "gt_volume_mm3": volume}
    return {seed: {**{f"t{i + 1}": row(d, 100.0) for i, d in enumerate(dscs)},
                   "free": row(1.0 if fp_free == 0 else 0.0, 0.0, fp_free)}
            for seed, dscs in dsc_by_seed.items()}


def test_results_tables_and_comparisons_on_hand_made_per_case_numbers():
    per_case = {
        "baseline": {"no_postprocessing": _per_case({0: [0.2, 0.4, 0.0], 1: [0.4, 0.4, 0.0]})},
        "so_student": {"no_postprocessing": _per_case({0: [0.6, 0.6, 0.3], 1: [0.6, 0.6, 0.3]}, fp_free=2.0)},
        "box_teacher": {"no_postprocessing": _per_case({0: [0.9, 0.9, 0.9]})},
        "ct_only_teacher": {"no_postprocessing": _per_case({0: [0.0, 0.0, 0.0]})},
    }
    results = compute_results(per_case, {"validation": ["t3"], "test": ["t1", "t2", "t3", "free"]})
    t = results["test"]["table"]
    assert (t["cases"], t["tumour_bearing"], t["tumour_free"]) == (4, 3, 1)
    base = t["rows"]["baseline"]["no_postprocessing"]
    # seed means per case: 0.3, 0.4, 0.0 -> mean 0.7 / 3 over the tumour-bearing cases (the empty "free" case
    # with its DSC 1 is not in the headline)
    assert base["dsc"]["mean"] == pytest.approx(0.7 / 3) and base["seeds"] == 2
    assert base["precision"]["n"] == 2  # t3 has nothing predicted: no precision
    assert t["rows"]["so_student"]["no_postprocessing"]["fp_per_tumour_free_case"]["mean"] == 2.0
    assert results["test"]["per_seed"]["baseline"][1]["dsc"] == pytest.approx(0.8 / 3)
    so, teachers = results["test"]["comparisons"]  # the DO student has no result: no comparison
    # paired differences in points: 30, 20, 30 -> mean 26.7; resampled means lie in [20, 30]
    assert (so["network"], so["reference"], so["n_cases"]) == ("so_student", "baseline", 3)
    assert so["mean"] == pytest.approx(80 / 3) and 20 <= so["low"] <= so["mean"] <= so["high"] <= 30
    assert teachers["mean"] == pytest.approx(90.0) and teachers["low"] == teachers["high"] == pytest.approx(90.0)
    lines = comparison_lines(results["test"]["comparisons"], t, "scarce")
    assert "SO student (50.0) minus baseline (strong only) (23.3): **+26.7 DSC points**, 95 % CI [+" in lines[0]
    assert "the CI excludes 0" in lines[0] and "Paper: +38.2 (MSD)" in lines[0]
    assert "The CT-only teacher (unguided) finds no tumour here" in lines[1]
    # an interval that rounds to 0 at one end includes 0, and is printed so (no "-0.0")
    near_zero = [{**so, "mean": -10.5, "low": -19.74, "high": -0.0104}]
    line = comparison_lines(near_zero, t, "scarce")[0]
    assert "95 % CI [-19.7, +0.0]" in line and "the CI includes 0" in line
    rows = table_lines(t, "student", "scarce", paper=True)
    # population std of (0.3, 0.4, 0.0): sqrt(0.26 / 9) = 0.170
    assert "| baseline (strong only) (2 seeds) | none | 23.3 ± 17.0 | 35.0 ± 5.0 | 100.0 ± 0.0 |" in rows[2]
    assert rows[3].count("|") == rows[0].count("|")
    teacher_rows = table_lines(t, "teacher", "scarce", paper=True)
    assert teacher_rows[2].endswith("84.9 / 86.7 (all) |")
    assert teacher_rows[3].endswith("| 0.00 ± 0.00 |  |")  # the unguided CT-only teacher: no paper number
    assert results["validation"]["table"]["tumour_bearing"] == 1


def test_cells():
    assert cell({"mean": 0.1234, "std": 0.05, "n": 3}) == "12.3 ± 5.0"
    assert cell({"mean": None, "std": None, "n": 0}) == "-"
    assert cell({"mean": 1.5, "std": 0.5}, 1.0, 2) == "1.50 ± 0.50"


def _plans(tmp_path, **source_settings):
    plans = tmp_path / "nnUNetPlans.json"
    source = {"patch_size": [8, 8, 8], **({"nnunet_ts": source_settings} if source_settings else {})}
    plans.write_text(json.dumps({"configurations": {"3d_fullres": source}}))
    return plans


def test_budget_configuration_is_a_plans_edit(tmp_path):
    plans = _plans(tmp_path)
    budget = TrainingSettings(budget=(3, 5, 1), mirroring=False, final_validation="except_fold_all")
    added = add_training_configuration(plans, "demo", "3d_fullres", budget)
    assert added == {"inherits_from": "3d_fullres", "nnunet_ts": {
        "budget": [3, 5, 1], "mirroring": False, "final_validation": "except_fold_all"}}
    add_training_configuration(plans, "demo", "3d_fullres", budget)  # same: no-op
    with pytest.raises(InputError, match="--overwrite"):
        add_training_configuration(plans, "demo", "3d_fullres", TrainingSettings(budget=(4, 5, 1)))
    with pytest.raises(InputError, match="no configuration '3d_tiny'"):
        add_training_configuration(plans, "x", "3d_tiny", TrainingSettings(budget=(1, 1, 1)))
    with pytest.raises(InputError, match="budget must be"):
        add_training_configuration(plans, "x", "3d_fullres", TrainingSettings(budget=(0, 1, 1)))
    assert json.loads(plans.read_text())["configurations"]["demo"]["nnunet_ts"]["budget"] == [3, 5, 1]


def test_a_configuration_keeps_the_settings_of_its_source(tmp_path):
    # nnU-Net resolves inherits_from with a shallow update: the child must carry its source's settings itself
    plans = _plans(tmp_path, box_loss_weight=0.5, dual_decoder=True)
    added = add_training_configuration(plans, "demo", "3d_fullres", TrainingSettings(dice_smooth=0.0))
    assert added["nnunet_ts"] == {"box_loss_weight": 0.5, "dual_decoder": True, "dice_smooth": 0.0}


def test_panel_cases_span_tumour_sizes_and_skip_empty_cases():
    sizes = {"a": 0, "b": 500, "c": 20, "d": 90, "e": 7, "f": 0}
    assert choose_panel_cases(sizes, 3) == ["b", "c", "e"]  # ranks 0, 1.5 -> 2, 3
    assert choose_panel_cases(sizes, 10) == ["b", "d", "c", "e"]


def test_demo_help(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    # what it runs, its choices and defaults, how to resume and where the report goes
    for expected in ("scarce", "vast", "--scale", "cpu", "gpu", "--epochs", "--out", "--overwrite", "--cases",
                     "report", "--train-seeds", "--n-validation", "--no-lung-crops", "validation"):
        assert expected in text, expected


@requires_nnunet
def test_whole_demo_at_minimal_size_then_resumes(tmp_path, monkeypatch):
    from nnunet_ts.demo.pipeline import Demo, load_plans, run_demo, summary_lines
    from nnunet_ts.io.images import read_image
    from nnunet_ts.planners.plans_file import resolved_configuration

    for variable in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results", "nnUNet_def_n_proc"):
        monkeypatch.delenv(variable, raising=False)
    config = DemoConfig("scarce", "cpu", Cohort(n_strong=3, n_weak=3, n_test=2, n_validation=1),
                        synth_shape=(32, 64, 64), tiny_patch=(32, 64, 64), teacher_budget=Budget(1, 2, 1),
                        student_budget=Budget(1, 2, 1), panels=2, num_processes=1)
    lines = []
    demo = Demo(config, tmp_path / "demo", echo=lines.append)
    seconds = run_demo(demo)
    commands = [line[2:] for line in lines if line.startswith("$ ")]
    trainings = demo.runs()
    # every step is a stock command a user can type
    assert sum(c.startswith("nnUNetv2_train") for c in commands) == len(trainings) == len(MODELS)
    assert sum(c.startswith("nnUNetv2_predict") for c in commands) == len(MODELS)
    assert any(c.startswith("nnunet_ts pseudolabel") for c in commands)
    for run in trainings:  # found by nnU-Net's lookup, seeded, trained on fold all without its final validation
        log = (demo.out / "logs" / f"train_{run.name}.log").read_text()
        assert run.model.trainer in log and "final validation skipped" in log and "seed=0" in log

    # one plan: the students' dataset (704) holds the baseline's plans (702), moved by nnU-Net's own command
    assert any("nnUNetv2_move_plans_between_datasets -s 702 -t 704" in c for c in commands)
    baseline_plans, student_plans = load_plans(demo, 702), load_plans(demo, 704)
    assert baseline_plans["dataset_name"] != student_plans["dataset_name"]
    trained = ["3d_fullres", "3d_tiny", "demo_student_seed0"]
    assert plan_differences(baseline_plans, student_plans, trained) == []
    settings = resolved_configuration(student_plans, "demo_student_seed0")["nnunet_ts"]
    assert settings == resolved_configuration(baseline_plans, "demo_student_seed0")["nnunet_ts"]
    assert settings["seed"] == 0 and settings["budget"] == [1, 2, 1] and settings["dice_smooth"] == 0
    # the teachers: one plan but for the segbox channel
    assert plan_differences(load_plans(demo, 701), baseline_plans, ["demo_teacher_seed0"], channels=1) == []
    assert json.loads((demo.out / "plans_check.json").read_text()) == {"students": [], "teachers": []}

    # lung crops: trained and predicted on crops, pasted back and scored on the whole CT
    sets = json.loads((demo.out / "sets.json").read_text())
    assert (len(sets["validation"]), len(sets["test"])) == (1, 2)
    crops = (demo.crops / "cases.csv").read_text()
    assert "_right," in crops and "_left," in crops
    for case in sets["validation"] + sets["test"]:
        whole = read_image(demo.held_out_masks() / f"{case}.nii.gz")[0]
        assert read_image(demo.predictions(trainings[-1]) / f"{case}.nii.gz")[0].shape == whole.shape == (32, 64, 64)

    report = (demo.report_dir / "report.md").read_text()
    for heading in ("## How the comparison is set up", "## Test set (final tables)", "## Validation set",
                    "minus baseline (strong only)", "95 % CI"):
        assert heading in report, heading
    for model in MODELS:
        assert f"| {model.label} | none |" in report and f"| {model.label} | LCC |" in report
    for run in trainings:
        summary = json.loads((demo.evaluation(run, "largest_component") / "evaluation_summary.json").read_text())
        assert summary["n_cases"] == 3 and summary["settings"]["largest_component"] is True
    assert (demo.report_dir / "bar_chart.png").stat().st_size > 1000
    # synthetic weak cases have true masks: the pseudo-labels are scored against them (on the weak crops)
    pseudo = json.loads((demo.out / "evaluation" / "pseudo_labels" / "evaluation_summary.json").read_text())
    assert pseudo["n_cases"] >= 3 and "### Pseudo-labels" in report
    results = json.loads((demo.report_dir / "results.json").read_text())
    assert results["cohort"] == {"strong": 3, "weak": 3, "test": 3} and results["sets"] == {"validation": 1, "test": 2}
    assert [(c["network"], c["reference"]) for c in results["results"]["test"]["comparisons"]] == [
        ("so_student", "baseline"), ("do_student", "baseline"), ("box_teacher", "ct_only_teacher")]
    assert any("report.md" in line for line in summary_lines(demo, seconds))

    # a rerun resumes: nothing left to do
    lines.clear()
    again = run_demo(Demo(config, tmp_path / "demo", echo=lines.append))
    assert not any(line.startswith("$ ") for line in lines) and again["total"] < 5
    # a deleted report is written again, alone
    shutil.rmtree(demo.report_dir)
    lines.clear()
    run_demo(Demo(config, tmp_path / "demo", echo=lines.append))
    assert not any(line.startswith("$ ") for line in lines) and (demo.report_dir / "report.md").is_file()
    assert any("again: " in line and "report.md is missing" in line for line in lines)
    # a step that runs again refreshes the results after it
    (demo.out / ".steps" / f"evaluate_{trainings[-1].name}_largest_component.done").unlink()
    report_time = (demo.report_dir / "report.md").stat().st_mtime_ns
    lines.clear()
    run_demo(Demo(config, tmp_path / "demo", echo=lines.append))
    commands = [line[2:] for line in lines if line.startswith("$ ")]
    assert len(commands) == 1 and commands[0].startswith("nnunet_ts evaluate") and "largest-component" in commands[0]
    assert any("again: an earlier step it depends on ran in this run" in line for line in lines)
    assert (demo.report_dir / "report.md").stat().st_mtime_ns > report_time
    # other settings in the same folder: refused
    with pytest.raises(InputError, match="other settings"):
        run_demo(Demo(replace(config, seed=1), tmp_path / "demo", echo=lines.append))


def test_more_training_seeds_continue_a_run(tmp_path):
    from nnunet_ts.demo.pipeline import SETTINGS_FILE, Demo

    config = DemoConfig("scarce", "cpu", Cohort(n_strong=3, n_weak=3, n_test=2, n_validation=1),
                        synth_shape=(32, 64, 64), teacher_budget=Budget(1, 2, 1), student_budget=Budget(1, 2, 1))
    one = Demo(config, tmp_path / "demo", echo=lambda _: None)
    one.prepare(overwrite=False)
    two = Demo(replace(config, train_seeds=2), tmp_path / "demo", echo=lambda _: None)
    two.prepare(overwrite=False)  # accepted: the same run with one more seed
    stored = json.loads((tmp_path / "demo" / SETTINGS_FILE).read_text())["settings"]["config"]
    assert stored["train_seeds"] == 2
    # the one-seed run's steps keep their names (their markers skip them); what is new is seed 1's
    old, extended = {s.name for s in one.steps()}, {s.name for s in two.steps()}
    new = extended - old
    assert old < extended
    assert new and all("seed1" in name for name in new)
    assert {f"train_{key}_seed1" for key in ("baseline", "so_student", "do_student")} <= new
    assert not any(name.startswith("train_") and "teacher" in name for name in new)
    # any other change is still refused
    with pytest.raises(InputError, match="other settings"):
        Demo(replace(config, train_seeds=2, seed=1), tmp_path / "demo", echo=lambda _: None).prepare(overwrite=False)
    # a damaged settings file: one clear error naming it, the run's folder left as it is
    (tmp_path / "demo" / SETTINGS_FILE).write_text('{"settings": ')
    with pytest.raises(InputError, match=r"demo\.json is not readable JSON.*--overwrite"):
        Demo(config, tmp_path / "demo", echo=lambda _: None).prepare(overwrite=False)
    assert (tmp_path / "demo" / SETTINGS_FILE).read_text() == '{"settings": '


def test_a_step_reruns_only_the_results_that_depend_on_it(tmp_path):
    """Adding a seed leaves the finished seed's and the teachers' results alone; retraining a teacher redoes
    every result (the pseudo-labels depend on the box teacher); the plans check and report follow any change."""
    from nnunet_ts.demo.pipeline import Demo, run_demo

    config = DemoConfig("scarce", "cpu", Cohort(n_strong=3, n_weak=3, n_test=2, n_validation=1),
                        synth_shape=(32, 64, 64), teacher_budget=Budget(1, 2, 1), student_budget=Budget(1, 2, 1))
    ran: list[str] = []

    class Recorded:
        """The demo's real steps, with actions that only record themselves and leave their output."""

        def __init__(self, seeds: int):
            self.real = Demo(replace(config, train_seeds=seeds), tmp_path / "demo", echo=lambda _: None)
            self.out, self.echo = self.real.out, lambda _: None

        def prepare(self, overwrite: bool) -> None:
            self.real.prepare(overwrite)

        def steps(self):
            def recorder(step):
                def action():
                    ran.append(step.name)
                    if step.output is not None:
                        step.output.mkdir(parents=True, exist_ok=True)
                return action
            return [step._replace(action=recorder(step)) for step in self.real.steps()]

    run_demo(Recorded(1))
    assert len(ran) == len(Recorded(1).steps())
    ran.clear()
    run_demo(Recorded(2))
    assert ran and set(ran) - {"check_plans", "report"} == {n for n in ran if n.endswith("seed1") or "_seed1_" in n}
    assert {"check_plans", "report", "train_so_student_seed1", "predict_so_student_seed1"} <= set(ran)
    ran.clear()
    (tmp_path / "demo" / ".steps" / "train_baseline_seed0.done").unlink()
    run_demo(Recorded(2))
    assert "predict_so_student_seed0" in ran and "evaluate_baseline_seed0_largest_component" in ran
    assert not any("seed1" in n or "teacher" in n for n in ran if n not in ("check_plans", "report"))
    ran.clear()
    (tmp_path / "demo" / ".steps" / "train_box_teacher_seed0.done").unlink()
    run_demo(Recorded(2))
    assert {f"predict_{key}_seed{s}" for key in ("baseline", "so_student", "do_student") for s in (0, 1)} <= set(ran)
    assert "predict_ct_only_teacher_seed0" in ran
