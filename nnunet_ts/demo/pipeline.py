"""The paper's experiment end to end, as a list of resumable steps over the stock commands.

Each step runs one command (``nnunet_ts ...``, ``nnUNetv2_...``) through :class:`CommandRunner`, which
prints it: copied into a shell with ``eval "$(nnunet_ts env --root OUT/nnunet)"``, it redoes that
step alone. A finished step leaves ``OUT/.steps/<step>.done``; a rerun skips it, so an interrupted demo
continues where it stopped. Predictions, evaluations and the report are redone, marker or not, when the
file they leave is gone (e.g. a deleted ``report/``) or when an earlier step ran in this run (e.g. a
training whose marker was deleted), so they never describe networks that have changed since.
``OUT/demo.json`` records the settings; a rerun with other settings stops with an error (use
``--overwrite`` or another ``--out``).

Layout of OUT::

    cases/                  the synthetic cohort (cases.csv + CT, mask, boxes), unless --cases is given
    nnunet/nnUNet_raw|_preprocessed|_results     nnU-Net's three folders
    predictions/<model>/    test-set predictions
    evaluation/<model>/{no_postprocessing,largest_component}/   nnunet_ts evaluate outputs
    logs/<step>.log         the output of every command
    report/                 report.md, results.json, figures (see nnunet_ts.demo.report)
"""
from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import NamedTuple

from nnunet_ts.demo.config import (
    MODELS,
    POSTPROCESSING,
    PSEUDO_ID,
    STUDENT_CONFIG,
    STUDENT_ID,
    TEACHER_CONFIG,
    TEACHER_ID,
    WEAK_ID,
    DemoConfig,
    Model,
)
from nnunet_ts.errors import InputError
from nnunet_ts.evaluation.folder import SUMMARY_NAME
from nnunet_ts.nnunet.stock_commands import CommandRunner, dataset_folder, nnunet_environment, quoted

SETTINGS_FILE = "demo.json"
STEPS_DIR = ".steps"
NOT_DONE = "not done yet"


class Step(NamedTuple):
    """One resumable step: ``output`` is a file it leaves when it is redone whenever that file is gone or
    an earlier step ran (predictions, evaluations, the report); None for a step made once."""

    name: str
    description: str
    action: Callable[[], None]
    output: Path | None = None


class Demo:
    """Paths and steps of one demo run in ``out`` (see the module docstring)."""

    def __init__(self, config: DemoConfig, out: Path, device: str = "cpu", cases: Path | None = None,
                 echo: Callable[[str], object] = print):
        self.config, self.device, self.echo = config, device, echo
        self.out = Path(out).resolve()
        self.given_cases = None if cases is None else Path(cases).resolve()
        self.cases = self.given_cases or self.out / "cases"
        self.root = self.out / "nnunet"
        self.raw, self.preprocessed, self.results = (self.root / v for v in
                                                     ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"))
        self.report_dir = self.out / "report"
        self.runner: CommandRunner | None = None

    # ----- paths
    def model_folder(self, model: Model) -> Path:
        return dataset_folder(self.results, model.dataset_id) / \
            f"{model.trainer}__nnUNetPlans__{model.configuration}"

    def predictions(self, model: Model) -> Path:
        return self.out / "predictions" / model.key

    def evaluation(self, model: Model, postprocessing: str) -> Path:
        return self.out / "evaluation" / model.key / postprocessing

    def test_labels(self) -> Path:
        return dataset_folder(self.raw, STUDENT_ID) / "labelsTs"

    def settings(self) -> dict:
        return {"config": asdict(self.config), "cases": str(self.given_cases) if self.given_cases else None}

    # ----- running
    def prepare(self, overwrite: bool) -> None:
        """Create OUT (or empty it with ``overwrite``); refuse a folder holding other settings."""
        settings_file = self.out / SETTINGS_FILE
        if overwrite and self.out.exists():
            if not settings_file.is_file() and any(self.out.iterdir()):
                raise InputError(f"{self.out} is not empty and holds no {SETTINGS_FILE}: not a demo "
                                 f"folder; choose another --out")
            shutil.rmtree(self.out)
        if settings_file.is_file():
            stored = json.loads(settings_file.read_text())
            if stored.get("settings") != json.loads(json.dumps(self.settings())):
                raise InputError(f"{self.out} holds a demo run with other settings ({settings_file}); "
                                 f"pass --overwrite to start afresh or choose another --out")
        elif self.out.exists() and any(self.out.iterdir()):
            raise InputError(f"{self.out} is not empty and holds no {SETTINGS_FILE}; choose another --out")
        self.out.mkdir(parents=True, exist_ok=True)
        if not settings_file.is_file():
            settings_file.write_text(json.dumps({"settings": self.settings()}, indent=2))
        env = nnunet_environment(self.root, self.device, self.config.num_processes)
        self.runner = CommandRunner(env, self.out / "logs", echo=self.echo)

    def steps(self) -> list[Step]:
        """The steps in order."""
        c, np_ = self.config, self.config.num_processes
        steps: list[Step] = []

        def cmd(name: str, description: str, command: str, output: Path | None = None) -> None:
            steps.append(Step(name, description, lambda: self.runner.run(command, name), output))

        if self.given_cases is None:
            shape = " ".join(map(str, c.synth_shape))
            cmd("synth", "synthetic thorax CTs: strong (masks), weak (boxes only) and test cases, by patient",
                f"nnunet_ts synth {quoted(self.cases)} --n-strong {c.cohort.n_strong} --n-weak {c.cohort.n_weak} "
                f"--n-test {c.cohort.n_test} --seed {c.seed} --shape {shape} --workers {np_}")
        for kind, did, name, extra in (("teacher", TEACHER_ID, "DemoTeacher", ""),
                                       ("student", STUDENT_ID, "DemoStudent", ""),
                                       ("weak", WEAK_ID, "DemoWeak", " --allow-empty-boxes")):
            cmd(f"dataset_{kind}", f"{kind} dataset (nnU-Net raw format)",
                f"nnunet_ts dataset {kind} --cases {quoted(self.cases)} -d {did} -n {name} "
                f"--workers {np_}{extra}")
        # no --verify_dataset_integrity: `nnunet_ts dataset` checked every file already, and nnU-Net's
        # check spawns a pool of processes that each import torch (a minute on a busy 2-core CPU)
        cmd("plan_student", "plan and preprocess the student dataset (stock nnU-Net)",
            f"nnUNetv2_plan_and_preprocess -d {STUDENT_ID} -c 3d_fullres -np {np_}")
        cmd("plan_teacher", "plan and preprocess the teacher dataset (segbox kept binary, student's spacing)",
            f"nnunet_ts plan-teacher -d {TEACHER_ID} --spacing-from {STUDENT_ID} -np {np_} --no-verify --overwrite")
        self._configurations(cmd, TEACHER_ID, [TEACHER_CONFIG])
        self._configurations(cmd, STUDENT_ID, [TEACHER_CONFIG, STUDENT_CONFIG])
        box_teacher, ct_only, baseline, so, do = MODELS
        steps.append(self._train(box_teacher))
        teacher_dir = f"$nnUNet_results/{dataset_glob(TEACHER_ID)}/{box_teacher.trainer}__nnUNetPlans__{TEACHER_CONFIG}"
        cmd("pseudolabel", "the box teacher's soft outputs on the weak set -> student dataset",
            f"nnunet_ts pseudolabel --teacher {teacher_dir} --folds all --weak {WEAK_ID} --strong {STUDENT_ID} "
            f"-d {PSEUDO_ID} -n DemoPseudo --device {self.device} --allow-empty-boxes")
        cmd("plan_pseudo", "plan and preprocess the student dataset with pseudo-labels (stock nnU-Net)",
            f"nnUNetv2_plan_and_preprocess -d {PSEUDO_ID} -c 3d_fullres -np {np_}")
        pairs = self.out / "evaluation" / "pseudo_labels_input"
        evaluate_pseudo = (f"nnunet_ts evaluate --pred {quoted(pairs / 'pred')} --gt {quoted(pairs / 'gt')} "
                           f"--out {quoted(self.out / 'evaluation' / 'pseudo_labels')} --overwrite")

        def pseudo_label_quality() -> None:
            if link_pseudo_label_pairs(self, pairs):
                self.runner.run(evaluate_pseudo, "evaluate_pseudo_labels")

        steps.append(Step("evaluate_pseudo_labels", "pseudo-labels (teacher >= 0.5) vs the true masks of the weak "
                      "cases, where known (synthetic data)", pseudo_label_quality))
        self._configurations(cmd, PSEUDO_ID, [STUDENT_CONFIG])
        for model in (so, do, ct_only, baseline):
            steps.append(self._train(model))
        # on a CPU, nnU-Net's sequential prediction (-npp 0 -nps 0): no worker processes to spawn,
        # each of which would import torch again
        predict_np = 0 if self.device == "cpu" else np_
        for model in MODELS:
            inputs = f"$nnUNet_raw/{dataset_glob(model.test_input)}/imagesTs"
            cmd(f"predict_{model.key}", f"{model.label}: predict the test set",
                f"nnUNetv2_predict -i {inputs} -o {quoted(self.predictions(model))} -d {model.dataset_id} "
                f"-c {model.configuration} -f all -tr {model.trainer} -chk checkpoint_final.pth "
                f"-device {self.device} --disable_tta -step_size {c.predict_step_size} "
                f"-npp {predict_np} -nps {predict_np}", output=self.predictions(model))
        gt = f"$nnUNet_raw/{dataset_glob(STUDENT_ID)}/labelsTs"
        for model in MODELS:
            for post, option in POSTPROCESSING.items():
                cmd(f"evaluate_{model.key}_{post}", f"{model.label}: evaluate ({post.replace('_', ' ')})",
                    f"nnunet_ts evaluate --pred {quoted(self.predictions(model))} --gt {gt} "
                    f"--out {quoted(self.evaluation(model, post))} --overwrite{option}",
                    output=self.evaluation(model, post) / SUMMARY_NAME)
        steps.append(Step("report", "tables, bar chart and image panels", self._report,
                          self.report_dir / "report.md"))
        return steps

    def _configurations(self, cmd, did: int, names: list[str]) -> None:
        c = self.config
        source = "3d_fullres"
        if c.network == "3d_tiny":
            patch = " ".join(map(str, c.tiny_patch))
            cmd(f"tiny_plans_{did}", f"CPU-sized configuration 3d_tiny for dataset {did}",
                f"nnunet_ts tiny-plans -d {did} --patch {patch} --overwrite")
            source = "3d_tiny"
        for name in names:
            b = c.teacher_budget if name == TEACHER_CONFIG else c.student_budget
            smooth = c.student_dice_smooth if name == STUDENT_CONFIG else None
            cmd(f"budget_{did}_{name}", f"configuration {name} ({b.epochs} x {b.iterations} iterations) "
                                        f"for dataset {did}",
                f"nnunet_ts budget-config -d {did} -c {name} --source {source} --epochs {b.epochs} "
                f"--iterations {b.iterations} --val-iterations {b.val_iterations}"
                + ("" if smooth is None else f" --dice-smooth {smooth:g}") + " --overwrite")

    def _train(self, model: Model) -> Step:
        budget = self.config.teacher_budget if model.role == "teacher" else self.config.student_budget
        name = f"train_{model.key}"
        command = (f"nnUNetv2_train {model.dataset_id} {model.configuration} all -tr {model.trainer} "
                   f"-device {self.device}")

        def action() -> None:
            # an interrupted training continues from its latest checkpoint
            folder = self._model_folder_or_none(model)
            resume = folder is not None and (folder / "fold_all" / "checkpoint_latest.pth").is_file()
            self.runner.run(command + (" --c" if resume else ""), name, epochs=budget.epochs)

        return Step(name, f"train the {model.label} ({budget.epochs} x {budget.iterations} iterations)", action)

    def _model_folder_or_none(self, model: Model) -> Path | None:
        try:
            return self.model_folder(model)
        except InputError:
            return None

    def _report(self) -> None:
        from nnunet_ts.demo.report import write_report

        write_report(self, self.report_dir)


def link_pseudo_label_pairs(demo: Demo, out: Path) -> int:
    """Links ``out/pred/<case>`` (the pseudo dataset's hard label) and ``out/gt/<case>`` (the true mask)
    for every weak case with a mask on disk (``nnunet_ts synth`` writes masks for weak cases too; real
    weak cohorts have none: then both folders stay empty and the evaluation is skipped)."""
    from nnunet_ts.io.manifest import read_manifest

    labels = dataset_folder(demo.raw, PSEUDO_ID) / "labelsTr"
    shutil.rmtree(out, ignore_errors=True)
    (out / "pred").mkdir(parents=True)
    (out / "gt").mkdir()
    n = 0
    for record in read_manifest(demo.cases):
        mask = record.mask or Path(record.ct).with_name(f"{record.case_id}_mask.nii.gz")
        label = labels / f"{record.case_id}.nii.gz"
        if record.subset == "weak" and Path(mask).is_file() and label.is_file():
            (out / "pred" / label.name).symlink_to(label)
            (out / "gt" / label.name).symlink_to(Path(mask).resolve())
            n += 1
    demo.echo(f"  {n} weak cases with a true mask")
    return n


def dataset_glob(dataset_id: int) -> str:
    """The shell glob of a dataset folder (the name part is the demo's own)."""
    return f"Dataset{dataset_id:03d}_*"


def run_demo(demo: Demo, overwrite: bool = False) -> dict:
    """Run every step not yet done; returns ``{step: seconds}`` of this run (skipped steps: 0).

    ``OUT/timings.json`` keeps the seconds of every step as it finishes (earlier runs' included), so
    the report lists them.
    """
    demo.prepare(overwrite)
    steps_dir = demo.out / STEPS_DIR
    steps_dir.mkdir(exist_ok=True)
    steps = demo.steps()
    timings_file = demo.out / "timings.json"
    timings = json.loads(timings_file.read_text()) if timings_file.is_file() else {}
    seconds: dict[str, float] = {}
    t_start = time.time()
    ran_earlier_step = False
    for i, (name, description, action, output) in enumerate(steps, 1):
        marker = steps_dir / f"{name}.done"
        head = f"[{i}/{len(steps)}] {description}"
        why = _reason_to_run(marker, output, ran_earlier_step)
        if why is None:
            demo.echo(f"{head}: done earlier, skipped")
            seconds[name] = 0.0
            continue
        marker.unlink(missing_ok=True)
        demo.echo(f"\n{head}" + (f" (again: {why})" if why != NOT_DONE else ""))
        ran_earlier_step = True
        t0 = time.time()
        action()
        seconds[name] = timings[name] = time.time() - t0
        timings["total (sum of steps)"] = sum(v for k, v in timings.items() if not k.startswith("total"))
        timings_file.write_text(json.dumps(timings, indent=2))
        marker.write_text(json.dumps({"seconds": seconds[name]}))
    seconds["total"] = time.time() - t_start
    return seconds


def _reason_to_run(marker: Path, output: Path | None, ran_earlier_step: bool) -> str | None:
    """Why a step must run in this run, or None when it is done and up to date."""
    if not marker.is_file():
        return NOT_DONE
    if output is None:  # a step made once (cohort, datasets, plans, trainings): its marker is the record
        return None
    if not output.exists():
        return f"{output} is missing"
    if ran_earlier_step:
        return "an earlier step ran in this run"
    return None


def summary_lines(demo: Demo, seconds: dict) -> list[str]:
    """Where everything was written, for the end of the run."""
    report = demo.report_dir
    lines = ["", f"demo finished in {seconds.get('total', 0) / 60:.1f} min (this run; "
                 f"per-step times in {demo.out / 'timings.json'})",
             f"  report       {report / 'report.md'}",
             f"  bar chart    {report / 'bar_chart.png'}",
             f"  panels       {report / 'panels'}/",
             f"  results      {report / 'results.json'}",
             f"  cohort       {demo.cases}",
             f"  nnU-Net      {demo.root}/nnUNet_raw|_preprocessed|_results",
             f"  predictions  {demo.out / 'predictions'}/<network>/",
             f"  evaluation   {demo.out / 'evaluation'}/<network>/{{no_postprocessing,largest_component}}/",
             f"  logs         {demo.out / 'logs'}/<step>.log",
             f"to rerun one step by hand: eval \"$(nnunet_ts env --root {demo.root})\", then the printed command"]
    results = report / "report.md"
    if results.is_file():
        from nnunet_ts.demo.report import comparisons, load_results

        lines += ["", *comparisons(load_results(demo))]
    return lines
