"""The paper's experiment end to end, as a list of resumable steps over the stock commands.

Each step runs one command (``nnunet_ts ...``, ``nnUNetv2_...``) through :class:`CommandRunner`, which
prints it: copied into a shell with ``eval "$(nnunet_ts env --root OUT/nnunet)"``, it redoes that
step alone (a few bookkeeping steps are Python: the validation/test split, lung crops, pasting crop
predictions back, the plans check, the report). A finished step leaves ``OUT/.steps/<step>.done``; a
rerun skips it, so an interrupted demo continues where it stopped. Predictions, evaluations and the
report are redone, marker or not, when the file they leave is gone (e.g. a deleted ``report/``) or when
an earlier step they depend on ran in this run (e.g. a training whose marker was deleted), so they never
describe networks that have changed since. What depends on what is the step's ``scope``: the steps of
one training seed of the compared networks (``seed<k>``) depend on the shared steps and on each other,
not on another seed's, so adding seeds leaves the finished seeds' predictions alone.
``OUT/demo.json`` records the settings; a rerun with other settings stops with an error (use
``--overwrite`` or another ``--out``), except for ``--train-seeds``: more seeds add trainings to the same
run (its teachers, pseudo-labels and finished trainings and predictions are kept).

How the comparison is kept fair (docs/experiments.md, "How the comparison is set up"):

* one plan: dataset 702 (strong cases) is planned; its plans are moved to the students' dataset 704
  (``nnUNetv2_move_plans_between_datasets``) and 704 is preprocessed with them; the box teacher (701)
  takes 702's spacing; ``check_plans`` stops the demo if the compared plans differ;
* lung crops (``DemoConfig.lung_crops``): every dataset is written from the cropped cohort; predictions
  are pasted back and scored on the whole CT;
* seeds: baseline, SO and DO train once per training seed (configuration ``demo_student_seed<k>``);
* validation and test: the held-out patients are split into a validation set (design choices) and a
  test set (final tables); every network predicts both, the report names the set of each number.

Layout of OUT::

    cases/                  the synthetic cohort (cases.csv + CT, mask, boxes), unless --cases is given
    cases_lung_crops/       the cohort cropped per lung (cases.csv, <case>_crop.json), with lung crops
    sets.json               held-out case ids of the validation and the test set
    held_out_masks/         links to the whole-CT masks of the held-out cases (the ground truth)
    nnunet/nnUNet_raw|_preprocessed|_results     nnU-Net's three folders
    predictions/<model>/seed<k>/        whole-CT predictions of the held-out cases
    predictions_crops/<model>/seed<k>/  crop predictions, with lung crops
    evaluation/<model>/seed<k>/{no_postprocessing,largest_component}/   nnunet_ts evaluate outputs
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
    POSTPROCESSING,
    PSEUDO_ID,
    STUDENT_CONFIG,
    STUDENT_ID,
    TEACHER_CONFIG,
    TEACHER_ID,
    WEAK_ID,
    DemoConfig,
    Run,
    runs,
)
from nnunet_ts.errors import InputError
from nnunet_ts.evaluation.folder import SUMMARY_NAME
from nnunet_ts.nnunet.stock_commands import CommandRunner, dataset_folder, nnunet_environment, quoted

SETTINGS_FILE = "demo.json"
SETS_FILE = "sets.json"
PLANS_CHECK_FILE = "plans_check.json"
STEPS_DIR = ".steps"

NOT_DONE = "not done yet"
PSEUDO_NAME = "DemoPseudo"


def same_run(stored: dict | None, settings: dict) -> bool:
    """Whether ``settings`` continue the run recorded as ``stored``: equal but for the number of training
    seeds (``--train-seeds 3`` on a finished one-seed run adds seeds 1 and 2 to it)."""
    def without_seeds(d: dict | None) -> dict | None:
        if not isinstance(d, dict) or not isinstance(d.get("config"), dict):
            return d
        return {**d, "config": {k: v for k, v in d["config"].items() if k != "train_seeds"}}

    return without_seeds(stored) == without_seeds(settings)


SHARED, EVERY = None, "*"  # step scopes: shared by all that follows; a summary of all that precedes


class Step(NamedTuple):
    """One resumable step.

    ``output``: a file it leaves when it is redone whenever that file is gone or an earlier step it
    depends on ran (predictions, evaluations, the report); None for a step made once.
    ``scope``: what depends on it and what it depends on. ``SHARED`` (cohort, datasets, plans, teachers,
    pseudo-labels): every later step depends on it. A name (``seed<k>``, ``teachers``): a group whose
    later steps depend on it and on the shared steps only. ``EVERY`` (the plans check, the report):
    depends on every earlier step and no step depends on it.
    """

    name: str
    description: str
    action: Callable[[], None]
    output: Path | None = None
    scope: str | None = SHARED


class Demo:
    """Paths and steps of one demo run in ``out`` (see the module docstring)."""

    def __init__(self, config: DemoConfig, out: Path, device: str = "cpu", cases: Path | None = None,
                 echo: Callable[[str], object] = print):
        self.config, self.device, self.echo = config, device, echo
        self.out = Path(out).resolve()
        self.given_cases = None if cases is None else Path(cases).resolve()
        self.cases = self.given_cases or self.out / "cases"
        self.crops = self.out / "cases_lung_crops"
        self.root = self.out / "nnunet"
        self.raw, self.preprocessed, self.results = (self.root / v for v in
                                                     ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"))
        self.report_dir = self.out / "report"
        self.runner: CommandRunner | None = None

    # ----- paths
    @property
    def dataset_cases(self) -> Path:
        """The manifest every nnU-Net dataset is written from: the lung crops' or the cohort's."""
        return self.crops / "cases.csv" if self.config.lung_crops else self.cases

    def runs(self) -> tuple[Run, ...]:
        return runs(self.config)

    def model_folder(self, run: Run) -> Path:
        return dataset_folder(self.results, run.model.dataset_id) / \
            f"{run.model.trainer}__nnUNetPlans__{run.configuration}"

    def predictions(self, run: Run) -> Path:
        """Whole-CT predictions of the held-out cases."""
        return self.out / "predictions" / run.model.key / f"seed{run.seed}"

    def crop_predictions(self, run: Run) -> Path:
        return self.out / "predictions_crops" / run.model.key / f"seed{run.seed}"

    def evaluation(self, run: Run, postprocessing: str) -> Path:
        return self.out / "evaluation" / run.model.key / f"seed{run.seed}" / postprocessing

    def held_out_masks(self) -> Path:
        """The ground truth of the held-out cases (validation and test), on the whole CT."""
        return self.out / "held_out_masks"

    def sets_file(self) -> Path:
        return self.out / SETS_FILE

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
            try:
                stored = json.loads(settings_file.read_text())
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise InputError(f"{settings_file} is not readable JSON ({exc}); pass --overwrite to start "
                                 f"afresh or choose another --out") from None
            current = json.loads(json.dumps(self.settings()))
            if not isinstance(stored, dict) or not same_run(stored.get("settings"), current):
                raise InputError(f"{self.out} holds a demo run with other settings ({settings_file}); "
                                 f"pass --overwrite to start afresh or choose another --out")
        elif self.out.exists() and any(self.out.iterdir()):
            raise InputError(f"{self.out} is not empty and holds no {SETTINGS_FILE}; choose another --out")
        self.out.mkdir(parents=True, exist_ok=True)
        # written again on a rerun: another number of training seeds extends the same run
        settings_file.write_text(json.dumps({"settings": self.settings()}, indent=2))
        env = nnunet_environment(self.root, self.device, self.config.num_processes)
        self.runner = CommandRunner(env, self.out / "logs", echo=self.echo)

    def steps(self) -> list[Step]:
        """The steps in order."""
        c, np_ = self.config, self.config.num_processes
        steps: list[Step] = []

        def cmd(name: str, description: str, command: str, output: Path | None = None,
                scope: str | None = SHARED) -> None:
            steps.append(Step(name, description, lambda: self.runner.run(command, name), output, scope))

        if self.given_cases is None:
            shape = " ".join(map(str, c.synth_shape))
            cmd("synth", "synthetic thorax CTs: strong (masks), weak (boxes only) and held-out cases, by patient",
                f"nnunet_ts synth {quoted(self.cases)} --n-strong {c.cohort.n_strong} --n-weak {c.cohort.n_weak} "
                f"--n-test {c.cohort.n_held_out} --seed {c.seed} --shape {shape} --workers {np_}")
        steps.append(Step("sets", "held-out patients split into a validation and a test set", self._split_sets))
        if c.lung_crops:
            steps.append(Step("lung_crops", "one crop per lung of every case (the paper's student input)",
                              self._crop_cohort))
        cases = quoted(self.dataset_cases)
        for kind, did, name, extra in (("teacher", TEACHER_ID, "DemoTeacher", ""),
                                       ("student", STUDENT_ID, "DemoStudent", ""),
                                       ("weak", WEAK_ID, "DemoWeak", " --allow-empty-boxes")):
            cmd(f"dataset_{kind}", f"{kind} dataset (nnU-Net raw format)",
                f"nnunet_ts dataset {kind} --cases {cases} -d {did} -n {name} --workers {np_}{extra}")
        # no --verify_dataset_integrity: `nnunet_ts dataset` checked every file already, and nnU-Net's
        # check spawns a pool of processes that each import torch (a minute on a busy 2-core CPU)
        cmd("plan_student", "plan and preprocess the strong cases (stock nnU-Net): the plan of baseline and "
                            "students", f"nnUNetv2_plan_and_preprocess -d {STUDENT_ID} -c 3d_fullres -np {np_}")
        cmd("plan_teacher", "plan and preprocess the teacher dataset (segbox kept binary, student's spacing)",
            f"nnunet_ts plan-teacher -d {TEACHER_ID} --spacing-from {STUDENT_ID} -np {np_} --no-verify --overwrite")
        teacher_run = next(r for r in self.runs() if r.model.key == "box_teacher")
        seeds = range(c.train_seeds)
        self._configurations(cmd, TEACHER_ID, [(TEACHER_CONFIG, 0)])
        self._configurations(cmd, STUDENT_ID, [(TEACHER_CONFIG, 0)] + [(STUDENT_CONFIG, s) for s in seeds])
        steps.append(self._train(teacher_run))
        teacher_dir = (f"$nnUNet_results/{dataset_glob(TEACHER_ID)}/{teacher_run.model.trainer}__nnUNetPlans__"
                       f"{teacher_run.configuration}")
        cmd("pseudolabel", "the box teacher's soft outputs on the weak set -> student dataset",
            f"nnunet_ts pseudolabel --teacher {teacher_dir} --folds all --weak {WEAK_ID} --strong {STUDENT_ID} "
            f"-d {PSEUDO_ID} -n {PSEUDO_NAME} --device {self.device} --allow-empty-boxes")
        pseudo = f"Dataset{PSEUDO_ID:03d}_{PSEUDO_NAME}"
        # nnU-Net's recipe for training on another dataset's plans (its pretraining documentation): the
        # target's own fingerprint (kept for the record; the plans do not use it), the plans moved over,
        # preprocessing with them; dataset.json is copied by nnU-Net's planner only, so here by hand
        cmd("plan_pseudo", "the students' dataset takes the baseline's plans (nnU-Net's plans transfer), then "
                           "is preprocessed with them",
            f"nnUNetv2_extract_fingerprint -d {PSEUDO_ID} -np {np_} && "
            f'cp "$nnUNet_raw/{pseudo}/dataset.json" "$nnUNet_preprocessed/{pseudo}/" && '
            f"nnUNetv2_move_plans_between_datasets -s {STUDENT_ID} -t {PSEUDO_ID} -sp nnUNetPlans -tp nnUNetPlans "
            f"&& nnUNetv2_preprocess -d {PSEUDO_ID} -plans_name nnUNetPlans -c 3d_fullres -np {np_}")
        pairs = self.out / "evaluation" / "pseudo_labels_input"
        evaluate_pseudo = (f"nnunet_ts evaluate --pred {quoted(pairs / 'pred')} --gt {quoted(pairs / 'gt')} "
                           f"--out {quoted(self.out / 'evaluation' / 'pseudo_labels')} --overwrite")

        def pseudo_label_quality() -> None:
            if link_pseudo_label_pairs(self, pairs):
                self.runner.run(evaluate_pseudo, "evaluate_pseudo_labels")

        steps.append(Step("evaluate_pseudo_labels", "pseudo-labels (teacher >= 0.5) vs the true masks of the weak "
                      "cases, where known (synthetic data)", pseudo_label_quality))
        self._configurations(cmd, PSEUDO_ID, [(STUDENT_CONFIG, s) for s in seeds])
        steps.append(Step("check_plans", "one plan: baseline and students (and the two teachers but for the "
                          "segbox channel) train with identical plans", self._check_plans,
                          self.out / PLANS_CHECK_FILE, EVERY))
        order = ("so_student", "do_student", "ct_only_teacher", "baseline")
        for run in sorted((r for r in self.runs() if r.model.key != "box_teacher"),
                          key=lambda r: (r.seed, order.index(r.model.key))):
            steps.append(self._train(run))
        # on a CPU, nnU-Net's sequential prediction (-npp 0 -nps 0): no worker processes to spawn,
        # each of which would import torch again
        predict_np = 0 if self.device == "cpu" else np_
        for run in self.runs():
            m = run.model
            inputs = f"$nnUNet_raw/{dataset_glob(m.test_input)}/imagesTs"
            target = self.crop_predictions(run) if c.lung_crops else self.predictions(run)
            cmd(f"predict_{run.name}", f"{m.label}, seed {run.seed}: predict the held-out cases",
                f"nnUNetv2_predict -i {inputs} -o {quoted(target)} -d {m.dataset_id} "
                f"-c {run.configuration} -f all -tr {m.trainer} -chk checkpoint_final.pth "
                f"-device {self.device} --disable_tta -step_size {c.predict_step_size} "
                f"-npp {predict_np} -nps {predict_np}", output=target, scope=result_scope(run))
            if c.lung_crops:
                steps.append(Step(f"paste_{run.name}", f"{m.label}, seed {run.seed}: crop predictions pasted "
                                  f"back onto the whole CT", self._paster(run), self.predictions(run),
                                  result_scope(run)))
        gt = quoted(self.held_out_masks())
        for run in self.runs():
            for post, option in POSTPROCESSING.items():
                cmd(f"evaluate_{run.name}_{post}", f"{run.model.label}, seed {run.seed}: evaluate "
                                                   f"({post.replace('_', ' ')})",
                    f"nnunet_ts evaluate --pred {quoted(self.predictions(run))} --gt {gt} "
                    f"--out {quoted(self.evaluation(run, post))} --overwrite{option}",
                    output=self.evaluation(run, post) / SUMMARY_NAME, scope=result_scope(run))
        steps.append(Step("report", "tables, confidence intervals, bar chart and image panels", self._report,
                          self.report_dir / "report.md", EVERY))
        return steps

    def _configurations(self, cmd, did: int, configurations: list[tuple[str, int]]) -> None:
        c = self.config
        source = "3d_fullres"
        if c.network == "3d_tiny":
            patch = " ".join(map(str, c.tiny_patch))
            cmd(f"tiny_plans_{did}", f"CPU-sized configuration 3d_tiny for dataset {did}",
                f"nnunet_ts tiny-plans -d {did} --patch {patch} --overwrite")
            source = "3d_tiny"
        for base, seed in configurations:
            compared = base != TEACHER_CONFIG
            b = c.student_budget if compared else c.teacher_budget
            smooth = c.student_dice_smooth if base == STUDENT_CONFIG else None
            name = f"{base}_seed{seed}"
            cmd(f"budget_{did}_{name}", f"configuration {name} ({b.epochs} x {b.iterations} iterations, "
                                        f"training seed {seed}) for dataset {did}",
                f"nnunet_ts budget-config -d {did} -c {name} --source {source} --epochs {b.epochs} "
                f"--iterations {b.iterations} --val-iterations {b.val_iterations} --seed {seed}"
                + ("" if smooth is None else f" --dice-smooth {smooth:g}") + " --overwrite",
                scope=seed_scope(seed) if compared else SHARED)

    def _train(self, run: Run) -> Step:
        model = run.model
        budget = self.config.teacher_budget if model.role == "teacher" else self.config.student_budget
        name = f"train_{run.name}"
        command = (f"nnUNetv2_train {model.dataset_id} {run.configuration} all -tr {model.trainer} "
                   f"-device {self.device}")

        def action() -> None:
            # an interrupted training continues from its latest checkpoint
            folder = self._model_folder_or_none(run)
            resume = folder is not None and (folder / "fold_all" / "checkpoint_latest.pth").is_file()
            self.runner.run(command + (" --c" if resume else ""), name, epochs=budget.epochs)

        return Step(name, f"train the {model.label}, seed {run.seed} ({budget.epochs} x {budget.iterations} "
                          f"iterations)", action, scope=SHARED if model.role == "teacher" else seed_scope(run.seed))

    def _model_folder_or_none(self, run: Run) -> Path | None:
        try:
            return self.model_folder(run)
        except InputError:
            return None

    def _split_sets(self) -> None:
        from nnunet_ts.demo.crops import link_held_out_masks
        from nnunet_ts.demo.sets import split_held_out, write_sets
        from nnunet_ts.io.manifest import read_manifest

        fraction = self.config.cohort.validation_fraction
        split = split_held_out(read_manifest(self.cases), fraction, self.config.seed)
        write_sets(self.sets_file(), split, self.config.seed, fraction)
        n = link_held_out_masks(self.cases, self.held_out_masks())
        self.echo(f"  {len(split['validation'])} validation and {len(split['test'])} test cases ({n} held out)")

    def _crop_cohort(self) -> None:
        from nnunet_ts.demo.crops import crop_cohort

        manifest = crop_cohort(self.cases, self.crops)
        self.echo(f"  lung crops: {manifest} ({self.crops / 'lung_crops.json'} says how the lungs were found)")

    def _paster(self, run: Run) -> Callable[[], None]:
        def paste() -> None:
            from nnunet_ts.demo.crops import paste_predictions
            from nnunet_ts.demo.sets import read_sets

            sets = read_sets(self.sets_file())
            n = paste_predictions(self.crop_predictions(run), self.crops, sets["validation"] + sets["test"],
                                  self.predictions(run))
            self.echo(f"  {n} whole-CT predictions in {self.predictions(run)}")
        return paste

    def _check_plans(self) -> None:
        result = check_one_plan(self)
        if result["teachers"]:
            self.echo(f"  WARNING: the two teachers' plans differ beyond the segbox channel: "
                      f"{', '.join(result['teachers'])}")
        (self.out / PLANS_CHECK_FILE).write_text(json.dumps(result, indent=1))

    def _report(self) -> None:
        from nnunet_ts.demo.report import write_report

        write_report(self, self.report_dir)


def load_plans(demo: Demo, dataset_id: int) -> dict:
    return json.loads((dataset_folder(demo.preprocessed, dataset_id) / "nnUNetPlans.json").read_text())


def check_one_plan(demo: Demo) -> dict:
    """``{"students": [...], "teachers": [...]}``: where the compared networks' plans differ.

    Baseline (702) and students (704): every plan-level entry but the dataset's name and every training
    configuration, resolved (``plans_check.plan_differences``). Teachers (701 vs 702, their
    configuration): the same, on the CT channel only.

    Raises:
        InputError: the baseline's and the students' plans differ (the comparison would not be fair).
    """
    from nnunet_ts.demo.plans_check import plan_differences

    students = [f"{STUDENT_CONFIG}_seed{s}" for s in range(demo.config.train_seeds)]
    result = {"students": plan_differences(load_plans(demo, STUDENT_ID), load_plans(demo, PSEUDO_ID),
                                           ["3d_fullres", *students]),
              "teachers": plan_differences(load_plans(demo, TEACHER_ID), load_plans(demo, STUDENT_ID),
                                           [f"{TEACHER_CONFIG}_seed0"], channels=1)}
    if result["students"]:
        raise InputError(f"the baseline's plans (dataset {STUDENT_ID}) and the students' (dataset {PSEUDO_ID}) "
                         f"differ in {', '.join(result['students'][:8])}; rerun the demo with --overwrite")
    return result


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
    for record in read_manifest(demo.dataset_cases):
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
    ran: set[str | None] = set()  # scopes of the steps that ran in this run
    for i, (name, description, action, output, scope) in enumerate(steps, 1):
        marker = steps_dir / f"{name}.done"
        head = f"[{i}/{len(steps)}] {description}"
        why = _reason_to_run(marker, output, _depends_on(scope, ran))
        if why is None:
            demo.echo(f"{head}: done earlier, skipped")
            seconds[name] = 0.0
            continue
        marker.unlink(missing_ok=True)
        demo.echo(f"\n{head}" + (f" (again: {why})" if why != NOT_DONE else ""))
        if scope != EVERY:
            ran.add(scope)
        t0 = time.time()
        action()
        seconds[name] = timings[name] = time.time() - t0
        timings["total (sum of steps)"] = sum(v for k, v in timings.items() if not k.startswith("total"))
        timings_file.write_text(json.dumps(timings, indent=2))
        marker.write_text(json.dumps({"seconds": seconds[name]}))
    seconds["total"] = time.time() - t_start
    return seconds


def seed_scope(seed: int) -> str:
    """The scope of one training seed's steps of the compared networks (configurations, trainings, results)."""
    return f"seed{seed}"


def result_scope(run) -> str:
    """The scope of a training's prediction and evaluation steps: its seed's for the compared networks;
    ``teachers`` for the teachers (their trainings are shared steps: the pseudo-labels depend on them)."""
    return "teachers" if run.model.role == "teacher" else seed_scope(run.seed)


def _depends_on(scope: str | None, ran: set[str | None]) -> bool:
    """Whether a step of ``scope`` depends on a step that ran earlier in this run (``ran``: their scopes)."""
    return SHARED in ran or (bool(ran) if scope == EVERY else scope in ran)


def _reason_to_run(marker: Path, output: Path | None, depends_on_a_step_that_ran: bool) -> str | None:
    """Why a step must run in this run, or None when it is done and up to date."""
    if not marker.is_file():
        return NOT_DONE
    if output is None:  # a step made once (cohort, datasets, plans, trainings): its marker is the record
        return None
    if not output.exists():
        return f"{output} is missing"
    if depends_on_a_step_that_ran:
        return "an earlier step it depends on ran in this run"
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
             f"  sets         {demo.sets_file()} (validation / test)",
             f"  nnU-Net      {demo.root}/nnUNet_raw|_preprocessed|_results",
             f"  predictions  {demo.out / 'predictions'}/<network>/seed<k>/",
             f"  evaluation   {demo.out / 'evaluation'}/<network>/seed<k>/{{no_postprocessing,largest_component}}/",
             f"  logs         {demo.out / 'logs'}/<step>.log",
             f"to rerun one step by hand: eval \"$(nnunet_ts env --root {demo.root})\", then the printed command"]
    from nnunet_ts.demo.report import headline_lines

    headline = headline_lines(report)
    return lines + (["", "test set:", *headline] if headline else [])
