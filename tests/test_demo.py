"""`nnunet_ts demo`: presets, the budget configuration, report helpers, and the whole demo at a
minimal size (a few tiny cases, a few iterations) through the stock commands, resumed once."""
import json
import shutil
from dataclasses import replace

import pytest

from nnunet_ts.cli.main import main
from nnunet_ts.demo.config import Budget, Cohort, DemoConfig, preset
from nnunet_ts.demo.figures import choose_panel_cases
from nnunet_ts.demo.report import cell, comparisons
from nnunet_ts.errors import InputError
from nnunet_ts.planners.training_settings import TrainingSettings, add_training_configuration
from tests.factories.stock import requires_nnunet


def test_presets_and_budget_override():
    scarce, vast = preset("scarce", "cpu"), preset("vast", "cpu")
    assert scarce.cohort.n_weak > 3 * scarce.cohort.n_strong  # few strong, many weak
    assert 0.5 <= vast.cohort.n_weak / vast.cohort.n_strong <= 2  # similar sizes
    assert scarce.network == "3d_tiny"
    assert preset("scarce", "gpu").network == "3d_fullres"
    changed = scarce.with_budget(epochs=3)
    assert (changed.teacher_budget.epochs, changed.student_budget.epochs) == (3, 3)
    assert changed.student_budget.iterations == scarce.student_budget.iterations
    with pytest.raises(ValueError):
        preset("plenty", "cpu")
    with pytest.raises(ValueError):
        Cohort(1, 4, 2)


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


def test_cells_and_comparisons():
    assert cell({"mean": 0.1234, "std": 0.05, "n": 3}) == "12.3 ± 5.0"
    assert cell({"mean": None, "std": None, "n": 0}) == "-"

    def result(dsc):
        return {"no_postprocessing": {"metrics": {"dsc": {"mean": dsc, "std": 0.0}}}}

    lines = comparisons({"baseline": result(0.2), "so_student": result(0.5), "do_student": result(0.45),
                         "box_teacher": result(0.8), "ct_only_teacher": result(0.3)})
    assert "SO" in lines[0] and "+30.0 DSC points" in lines[0]
    assert "+50.0 DSC points" in lines[1]
    assert not any("tumour" in line for line in lines)

    def blind(dsc):  # finds no tumour: DSC-TP has no case
        found = result(dsc)
        found["no_postprocessing"]["metrics"]["dsc_tp"] = {"mean": None, "std": None, "n": 0}
        return found

    lines = comparisons({"baseline": blind(0.09), "so_student": blind(0.25), "do_student": blind(0.25),
                         "box_teacher": result(0.92), "ct_only_teacher": blind(0.25)})
    assert "+16.0 DSC points" in lines[0] and "Neither network finds a single test tumour" in lines[0]
    assert "The CT-only teacher finds no test tumour" in lines[1] and "Neither" not in lines[1]


def test_demo_help(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    # what it runs, its choices and defaults, how to resume and where the report goes
    for expected in ("scarce", "vast", "--scale", "cpu", "gpu", "--epochs", "--out", "--overwrite", "--cases",
                     "report"):
        assert expected in text, expected


@requires_nnunet
def test_whole_demo_at_minimal_size_then_resumes(tmp_path, monkeypatch):
    from nnunet_ts.demo.pipeline import MODELS, Demo, run_demo, summary_lines

    for variable in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results", "nnUNet_def_n_proc"):
        monkeypatch.delenv(variable, raising=False)
    config = DemoConfig("scarce", "cpu", Cohort(n_strong=3, n_weak=3, n_test=2), synth_shape=(32, 64, 64),
                        tiny_patch=(32, 64, 64), teacher_budget=Budget(1, 2, 1),
                        student_budget=Budget(1, 2, 1), panels=2, num_processes=1)
    lines = []
    demo = Demo(config, tmp_path / "demo", echo=lines.append)
    seconds = run_demo(demo)
    commands = [line[2:] for line in lines if line.startswith("$ ")]
    # every step is a stock command a user can type
    assert sum(c.startswith("nnUNetv2_train") for c in commands) == len(MODELS)
    assert sum(c.startswith("nnUNetv2_predict") for c in commands) == len(MODELS)
    assert any(c.startswith("nnunet_ts pseudolabel") for c in commands)
    for model in MODELS:  # found by nnU-Net's lookup, trained on fold all without its final validation
        log = (demo.out / "logs" / f"train_{model.key}.log").read_text()
        assert model.trainer in log and "final validation skipped" in log
    report = (demo.report_dir / "report.md").read_text()
    for model in MODELS:
        assert f"| {model.label} | none |" in report and f"| {model.label} | LCC |" in report
        summary = json.loads((demo.evaluation(model, "largest_component") / "evaluation_summary.json").read_text())
        assert summary["n_cases"] == 2 and summary["settings"]["largest_component"] is True
    assert (demo.report_dir / "bar_chart.png").stat().st_size > 1000
    # synthetic weak cases have true masks: the pseudo-labels are scored against them
    pseudo = json.loads((demo.out / "evaluation" / "pseudo_labels" / "evaluation_summary.json").read_text())
    assert pseudo["n_cases"] == 3 and "### Pseudo-labels" in report
    results = json.loads((demo.report_dir / "results.json").read_text())
    assert results["cohort"] == {"strong": 3, "weak": 3, "test": 2}
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
    (demo.out / ".steps" / f"evaluate_{MODELS[-1].key}_largest_component.done").unlink()
    report_time = (demo.report_dir / "report.md").stat().st_mtime_ns
    lines.clear()
    run_demo(Demo(config, tmp_path / "demo", echo=lines.append))
    commands = [line[2:] for line in lines if line.startswith("$ ")]
    assert len(commands) == 1 and commands[0].startswith("nnunet_ts evaluate") and "largest-component" in commands[0]
    assert any("again: an earlier step ran in this run" in line for line in lines)
    assert (demo.report_dir / "report.md").stat().st_mtime_ns > report_time
    # other settings in the same folder: refused
    with pytest.raises(InputError, match="other settings"):
        run_demo(Demo(replace(config, seed=1), tmp_path / "demo", echo=lines.append))
