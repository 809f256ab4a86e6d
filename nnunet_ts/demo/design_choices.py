"""Design choices made on the validation set: a finished demo's networks retrained with one setting changed.

A *choice* is one setting of the comparison that is not the method itself: the Dice's smooth, which the
baseline and both students share, or the DO student's box decoder. To decide it without the test set,
each network the setting touches is trained again for each training seed of a finished ``nnunet_ts demo``
run, on that demo's data, plans, budget and seed, the setting being the only change, and scored on the
demo's *validation* cases exactly as the demo scores its networks (lung crops predicted, pasted back onto
the whole CT, DSC on the tumour-bearing cases). The reference is the demo's own network of the same seed.
The test cases are neither predicted nor read.

**The rule** (fixed before any result): the changed setting replaces the demo's only if it scores higher on
validation with the paired bootstrap 95 % CI of the difference above 0, the difference taken per case as
the mean over the retrained networks of (changed − demo's), each network's value averaged over the seeds
first. Otherwise the demo's setting stays. Each network's difference is reported too.

Each changed configuration is ``demo_student_seed<k>_<suffix>`` (``_box_full``, ``_smooth_1e-05``), added
to a copy of the demo's plans and inheriting ``demo_student_seed<k>`` (the preprocessed data are linked,
not copied); nothing in the demo's folder changes. The DO student's box decoder is read from the demo's DO
training log and written into every configuration the DO student trains on, so a later change of the
code's default cannot enter the comparison.
"""
from __future__ import annotations

import json
import re
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

from nnunet_ts.demo.config import COMPARED, MODEL, STUDENT_CONFIG, STUDENT_ID, Model, Run
from nnunet_ts.errors import InputError

SETTINGS = ("box_decoder", "dice_smooth")
_BOX_DECODER_LOG = re.compile(r"box decoder convolutions per stage (\d+|as the segmentation decoder \(full\))")


@dataclass(frozen=True)
class Choice:
    """One changed setting: ``box_decoder`` (``full`` or N convolutions per stage; the DO student only) or
    ``dice_smooth`` (a number >= 0; the baseline and both students, who share one Dice)."""

    setting: str
    value: str

    @property
    def name(self) -> str:
        return f"{self.setting}={self.value}"

    @property
    def suffix(self) -> str:
        """The configuration's suffix: ``box_full``, ``box_2``, ``smooth_1e-05``."""
        if self.setting == "box_decoder":
            return f"box_{self.value}"
        return f"smooth_{float(self.value):g}"

    @property
    def models(self) -> tuple[Model, ...]:
        """The compared networks the setting changes, in the report's order."""
        keys = ("do_student",) if self.setting == "box_decoder" else COMPARED
        return tuple(MODEL[k] for k in keys)

    def configuration(self, seed: int) -> str:
        return f"{STUDENT_CONFIG}_seed{seed}_{self.suffix}"

    def add_to(self, plans_file: Path, seed: int, box_decoder: str | None = None) -> str:
        """Adds this choice's configuration for ``seed`` to a plans file (inheriting the demo's
        configuration of that seed); returns its name. ``box_decoder`` (``full`` or N): the DO student's
        box decoder to write into a ``dice_smooth`` configuration (the one the demo's DO trained with)."""
        from nnunet_ts.cli.plan_dual import box_decoder_convs
        from nnunet_ts.planners.dual_decoder_plans import DualDecoderSettings, add_dual_decoder_configuration
        from nnunet_ts.planners.plans_file import SETTINGS_KEY, add_configuration

        source, name = f"{STUDENT_CONFIG}_seed{seed}", self.configuration(seed)
        if self.setting == "box_decoder":
            return add_dual_decoder_configuration(plans_file, source, name=name, overwrite=True, settings=
                                                  DualDecoderSettings(box_decoder_convs=box_decoder_convs(self.value)))[0]
        pinned = {} if box_decoder is None else {"box_decoder_convs": box_decoder_convs(box_decoder)}
        add_configuration(plans_file, name, {SETTINGS_KEY: {"dice_smooth": float(self.value), **pinned}}, source,
                          overwrite=True)
        return name


def trained_box_decoder(model_folder: Path) -> str | None:
    """The box decoder (``full`` or N) a DO student's training log names; None when it names none."""
    from nnunet_ts.nnunet.training_log import training_log_text

    found = _BOX_DECODER_LOG.search(training_log_text(model_folder / "fold_all"))
    return None if found is None else "full" if found.group(1).startswith("as") else found.group(1)


def parse_choice(text: str) -> Choice:
    """``SETTING=VALUE``: ``box_decoder=full``, ``box_decoder=2``, ``dice_smooth=1e-5``.

    Raises:
        InputError: an unknown setting or a bad value, with the accepted forms.
    """
    setting, _, value = text.partition("=")
    forms = "box_decoder=full, box_decoder=N (N >= 1) or dice_smooth=S (S >= 0)"
    if setting not in SETTINGS or not value:
        raise InputError(f"unknown choice {text!r}: use {forms}")
    if setting == "box_decoder":
        if value != "full" and not (value.isdigit() and int(value) >= 1):
            raise InputError(f"choice {text!r}: the box decoder is 'full' or a number of convolutions >= 1")
        return Choice(setting, value if value == "full" else str(int(value)))
    try:
        smooth = float(value)
    except ValueError:
        smooth = -1.0
    if not smooth >= 0 or smooth == float("inf"):
        raise InputError(f"choice {text!r}: the Dice's smooth is a finite number >= 0")
    return Choice(setting, f"{smooth:g}")


def tumour_dsc(per_case_csv: Path, cases: list[str]) -> dict[str, float]:
    """``{case: DSC}`` of the tumour-bearing ``cases`` in an ``evaluation_per_case.csv``.

    Raises:
        InputError: a case missing from the file.
    """
    from nnunet_ts.demo.results import read_per_case

    rows = read_per_case(per_case_csv)
    missing = [c for c in cases if c not in rows]
    if missing:
        raise InputError(f"{per_case_csv} has no row for validation case(s) {missing[:3]}; delete its folder "
                         f"and rerun to evaluate again")
    return {c: rows[c]["dsc"] for c in cases if rows[c]["n_gt_lesions"] > 0}


def summarise(changed: dict[str, list[dict[str, float]]], reference: dict[str, list[dict[str, float]]],
              onsets: dict[str, dict[str, list[int | None]]]) -> dict:
    """Per network (``changed`` and ``reference``: ``{network: [per-seed {case: DSC}]}``): DSC per seed and
    over seeds of the demo's and of the changed one, the changed minus the demo's with its paired bootstrap
    95 % CI; then the rule's statistic, that difference averaged over the networks per case, and the
    decision. DSC in points."""
    from nnunet_ts.evaluation.statistics import compare_networks, mean_over_seeds

    def mean(d: dict[str, float]) -> float:
        return 100 * sum(d.values()) / len(d)

    def interval(d) -> dict:
        return {"mean": 100 * d.mean, "low": 100 * d.low, "high": 100 * d.high, "n_cases": d.n_cases}

    nets = list(changed)
    new = {n: mean_over_seeds(changed[n]) for n in nets}  # each case averaged over the seeds, once
    ref = {n: mean_over_seeds(reference[n]) for n in nets}
    out: dict = {"networks": {}}
    for net in nets:
        out["networks"][net] = {
            "demo": {"per_seed": [mean(s) for s in reference[net]], "mean": mean(ref[net]),
                     "onset_epochs": onsets["demo"][net]},
            "changed": {"per_seed": [mean(s) for s in changed[net]], "mean": mean(new[net]),
                        "onset_epochs": onsets["changed"][net]},
            "difference": interval(compare_networks(new[net], ref[net]))}
    cases = list(new[nets[0]])
    pooled_new = {c: sum(new[n][c] for n in nets) / len(nets) for c in cases}
    pooled_ref = {c: sum(ref[n][c] for n in nets) / len(nets) for c in cases}
    out["pooled"] = interval(compare_networks(pooled_new, pooled_ref))
    out["replace"] = out["pooled"]["mean"] > 0 and out["pooled"]["low"] > 0
    return out


def table_lines(summary: dict, choice: Choice, demo_value: str, header: str) -> list[str]:
    """The markdown tables: DSC per seed and over seeds of each network with the demo's and the changed
    setting, each difference with its CI, the rule's statistic and the decision."""
    nets = summary["networks"]
    n_seeds = len(next(iter(nets.values()))["demo"]["per_seed"])
    seeds = " | ".join(f"seed {k}" for k in range(n_seeds))
    lines = [header, "", f"| network | {choice.setting} | {seeds} | mean over seeds | onset epochs |",
             "|---|---|" + "---|" * (n_seeds + 2)]
    for net, n in nets.items():
        for which, value in (("demo", demo_value), ("changed", choice.value)):
            onsets = ", ".join("never" if e is None else str(e) for e in n[which]["onset_epochs"])
            per_seed = " | ".join(f"{v:.1f}" for v in n[which]["per_seed"])
            lines.append(f"| {net} | {value} | {per_seed} | {n[which]['mean']:.1f} | {onsets} |")
    lines += ["", f"| {choice.setting} {choice.value} − {demo_value} (validation) | mean DSC difference | "
                  f"paired bootstrap 95 % CI |", "|---|---|---|"]
    rows = [(net, n["difference"]) for net, n in nets.items()]
    if len(nets) > 1:
        rows.append(("mean over the networks (the rule)", summary["pooled"]))
    for name, c in rows:
        lines.append(f"| {name} | {c['mean']:+.1f} | [{c['low'] + 0.0:+.1f}, {c['high'] + 0.0:+.1f}] |")
    verdict = (f"{choice.name} replaces the demo's setting" if summary["replace"] else
               f"the demo's setting ({choice.setting}={demo_value}) stays: {choice.name} is not better with a CI "
               f"above 0")
    return lines + ["", f"Decision (the rule): {verdict}."]


def demo_value(choice: Choice, demo, box_decoder: str) -> str:
    """The demo's own value of the setting ``choice`` changes (``box_decoder``: its DO student's)."""
    if choice.setting == "box_decoder":
        return box_decoder
    smooth = demo.config.student_dice_smooth
    return f"{1e-5 if smooth is None else smooth:g}"  # None: nnU-Net's own smooth


def stored_demo(folder: Path):
    """The ``Demo`` of a finished ``nnunet_ts demo`` output folder, rebuilt from the settings it recorded.

    Raises:
        InputError: no settings file, or one written by another version of the demo.
    """
    from nnunet_ts.demo.config import Budget, Cohort, DemoConfig
    from nnunet_ts.demo.pipeline import SETTINGS_FILE, Demo

    settings_file = folder / SETTINGS_FILE
    if not settings_file.is_file():
        raise InputError(f"{settings_file} not found: --demo must be the output folder of a finished "
                         f"`nnunet_ts demo` run")
    try:
        settings = json.loads(settings_file.read_text())["settings"]
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as exc:
        raise InputError(f"{settings_file} is not a demo settings file ({type(exc).__name__}: {exc}); --demo must "
                         f"be the output folder of a finished `nnunet_ts demo` run") from None
    try:
        c = settings["config"]
        config = DemoConfig(**{**c, "cohort": Cohort(**c["cohort"]), "synth_shape": tuple(c["synth_shape"]),
                               "tiny_patch": tuple(c["tiny_patch"]),
                               "teacher_budget": Budget(**c["teacher_budget"]),
                               "student_budget": Budget(**c["student_budget"])})
    except (TypeError, KeyError) as exc:
        raise InputError(f"{settings_file} was written by another version of the demo ({exc!r}); rerun the demo "
                         f"with this version") from None
    return Demo(config, folder, cases=Path(settings["cases"]) if settings.get("cases") else None)


def link_tree(src: Path, dst: Path, copy: tuple[str, ...]) -> None:
    """``dst`` holds a link to every entry of ``src``, except the names in ``copy``, which are copied."""
    dst.mkdir(parents=True, exist_ok=True)
    for entry in src.iterdir():
        target = dst / entry.name
        if target.exists() or target.is_symlink():
            continue
        if entry.name in copy:
            shutil.copy2(entry, target)
        else:
            target.symlink_to(entry.resolve())


def link_folder(folder: Path, targets: dict[str, Path]) -> Path:
    """``folder`` holding a link ``name -> target`` per entry, made whole (a ``.partial`` folder renamed)."""
    tmp = folder.with_name(folder.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name, target in targets.items():
        (tmp / name).symlink_to(target.resolve())
    tmp.rename(folder)
    return folder


class ChoiceExperiment:
    """Paths, environment and the resumable steps of one experiment folder ``out`` on the demo ``demo``.

    Writes ``nnUNet_raw`` / ``nnUNet_preprocessed`` (links, plans copied), ``nnUNet_results``,
    ``validation_inputs/`` and ``validation_masks/`` (links), ``predictions/<network>/<configuration>``,
    ``evaluation/<network>/<configuration>`` and ``logs/``. Every step is skipped when its output exists,
    so a rerun resumes (an interrupted training continues from its latest checkpoint).
    """

    def __init__(self, out: Path, demo: Path, device: str, np_: int, seeds: list[int] | None = None):
        from nnunet_ts.demo.sets import read_sets
        from nnunet_ts.nnunet.stock_commands import CommandRunner, nnunet_environment

        self.out, self.device, self.np = out.resolve(), device, np_
        self.demo = stored_demo(demo.resolve())
        self.config = self.demo.config
        self.validation = read_sets(self.demo.sets_file()).get("validation", [])
        if not self.validation:
            raise InputError(f"{self.demo.sets_file()} names no validation case: --demo must be a finished demo "
                             f"with a validation set (--n-validation > 0)")
        self.seeds = list(range(self.config.train_seeds)) if seeds is None else list(seeds)
        unknown = [s for s in self.seeds if not 0 <= s < self.config.train_seeds]
        if unknown or not self.seeds:
            raise InputError(f"{self.demo.out} trained seeds 0..{self.config.train_seeds - 1}; --seeds "
                             f"{' '.join(map(str, self.seeds))} asks for others")
        do_folder = self.demo.model_folder(Run(MODEL["do_student"], self.seeds[0]))
        self.box_decoder = trained_box_decoder(do_folder)
        if self.box_decoder is None:
            raise InputError(f"the training log in {do_folder / 'fold_all'} names no box decoder: --demo must be "
                             f"a finished `nnunet_ts demo` run of this version; rerun the demo")
        self.out.mkdir(parents=True, exist_ok=True)
        self.env = nnunet_environment(self.out, device, np_)
        self.runner = CommandRunner(self.env, self.out / "logs")

    def reference(self, model: Model, seed: int) -> Path:
        """The per-case CSV of the demo's own network ``model`` of training seed ``seed``."""
        per_case = self.demo.evaluation(Run(model, seed), "no_postprocessing") / "evaluation_per_case.csv"
        if not per_case.is_file():
            raise InputError(f"{self.demo.out} has no evaluated {model.label} of training seed {seed} "
                             f"({per_case}): rerun the demo to finish it")
        return per_case

    def validation_inputs(self) -> Path:
        """Links to the CT files of the validation cases (their lung crops) in the demo's held-out dataset:
        the only images this experiment predicts."""
        from nnunet_ts.nnunet.stock_commands import dataset_folder

        folder = self.out / "validation_inputs"
        if folder.is_dir():
            return folder
        source = dataset_folder(self.demo.raw, STUDENT_ID) / "imagesTs"
        names = ([f"{case}_{side}_0000.nii.gz" for case in self.validation for side in ("left", "right")]
                 if self.config.lung_crops else [f"{case}_0000.nii.gz" for case in self.validation])
        images = [source / n for n in names if (source / n).is_file()]
        if not images:
            raise InputError(f"no validation image in {source}: the demo's held-out dataset is incomplete; "
                             f"rerun the demo")
        return link_folder(folder, {image.name: image for image in images})

    def validation_masks(self) -> Path:
        """Links to the whole-CT masks of the validation cases."""
        folder = self.out / "validation_masks"
        if folder.is_dir():
            return folder
        return link_folder(folder, {f"{c}.nii.gz": self.demo.held_out_masks() / f"{c}.nii.gz"
                                    for c in self.validation})

    def add_configurations(self, choice: Choice) -> dict[tuple[int, int], str]:
        """Link each dataset the choice trains on (raw; preprocessed with the plans copied) and add the
        choice's configuration per seed; returns ``{(dataset id, seed): configuration}``."""
        from nnunet_ts.nnunet.stock_commands import dataset_folder

        names = {}
        for did in sorted({m.dataset_id for m in choice.models}):
            raw = dataset_folder(self.demo.raw, did)
            link = self.out / "nnUNet_raw" / raw.name
            link.parent.mkdir(parents=True, exist_ok=True)
            if not link.is_symlink():
                link.symlink_to(raw)
            pre = self.out / "nnUNet_preprocessed" / raw.name
            link_tree(dataset_folder(self.demo.preprocessed, did), pre, copy=("nnUNetPlans.json",))
            trains_do = did == MODEL["do_student"].dataset_id
            for seed in self.seeds:
                names[(did, seed)] = choice.add_to(pre / "nnUNetPlans.json", seed,
                                                   self.box_decoder if trains_do else None)
        return names

    def train(self, model: Model, configuration: str) -> Path:
        """Train ``model`` on ``configuration`` (resumed if interrupted); returns its model folder."""
        from nnunet_ts.nnunet.stock_commands import dataset_folder

        dataset = dataset_folder(self.demo.raw, model.dataset_id).name
        folder = self.out / "nnUNet_results" / dataset / f"{model.trainer}__nnUNetPlans__{configuration}"
        if not (folder / "fold_all" / "checkpoint_final.pth").is_file():
            resume = (folder / "fold_all" / "checkpoint_latest.pth").is_file()
            self.runner.run(f"nnUNetv2_train {model.dataset_id} {configuration} all -tr {model.trainer} "
                            f"-device {self.device}" + (" --c" if resume else ""),
                            f"train_{model.key}_{configuration}", epochs=self.config.student_budget.epochs)
        return folder

    def validate(self, model: Model, configuration: str, model_folder: Path) -> Path:
        """Predict the validation cases (final checkpoint), paste crops back, score; returns the per-case
        CSV. Redone when the evaluation is missing or older than the model."""
        from nnunet_ts.demo.crops import paste_predictions
        from nnunet_ts.evaluation.folder import evaluate_folders
        from nnunet_ts.nnunet.stock_commands import quoted

        pred = self.out / "predictions" / model.key / configuration
        evaluation = self.out / "evaluation" / model.key / configuration
        per_case = evaluation / "evaluation_per_case.csv"
        checkpoint = model_folder / "fold_all" / "checkpoint_final.pth"
        if per_case.is_file() and per_case.stat().st_mtime >= checkpoint.stat().st_mtime:
            return per_case
        raw_pred = pred.with_name(pred.name + "_crops") if self.config.lung_crops else pred
        shutil.rmtree(raw_pred, ignore_errors=True)
        predict_np = 0 if self.device == "cpu" else self.np
        self.runner.run(
            f"nnUNetv2_predict -i {quoted(self.validation_inputs())} -o {quoted(raw_pred)} -d {model.dataset_id} "
            f"-c {configuration} -f all -tr {model.trainer} -chk checkpoint_final.pth -device {self.device} "
            f"--disable_tta -step_size {self.config.predict_step_size} -npp {predict_np} -nps {predict_np}",
            f"predict_{model.key}_{configuration}")
        if self.config.lung_crops:
            paste_predictions(raw_pred, self.demo.crops, self.validation, pred)
        evaluate_folders(pred, self.validation_masks(), evaluation, overwrite=True, progress=False)
        return per_case

    def run(self, choice: Choice) -> dict:
        """Train, predict and score every network the choice changes, seed by seed (stopped early, every
        network has as many seeds); writes ``<suffix>_table.md`` and ``<suffix>_results.json``; returns
        the summary."""
        from nnunet_ts.nnunet.training_log import onset_epoch, training_log_text

        def onset(model_folder: Path) -> int | None:
            return onset_epoch(training_log_text(model_folder / "fold_all"))

        current = demo_value(choice, self.demo, self.box_decoder)
        if choice.value == current:
            raise InputError(f"the demo {self.demo.out} already trains with {choice.name}; choose another value")
        reference = {m.label: [tumour_dsc(self.reference(m, s), self.validation) for s in self.seeds]
                     for m in choice.models}
        configurations = self.add_configurations(choice)
        onsets = {"demo": {m.label: [onset(self.demo.model_folder(Run(m, s))) for s in self.seeds]
                           for m in choice.models}, "changed": {}}
        changed: dict[str, list[dict[str, float]]] = {}
        for seed in self.seeds:
            for m in choice.models:
                configuration = configurations[(m.dataset_id, seed)]
                folder = self.train(m, configuration)
                changed.setdefault(m.label, []).append(tumour_dsc(self.validate(m, configuration, folder),
                                                                  self.validation))
                onsets["changed"].setdefault(m.label, []).append(onset(folder))
        summary = summarise(changed, reference, onsets)
        budget = self.config.student_budget
        n = next(iter(summary["networks"].values()))["difference"]["n_cases"]
        header = (f"{choice.name} against the demo {self.demo.out}: DSC % on the {n} tumour-bearing validation "
                  f"cases, {budget.epochs} x {budget.iterations} iterations per training, training seeds "
                  f"{', '.join(map(str, self.seeds))}; onset = first epoch whose pseudo Dice on training "
                  f"patches exceeds 0.05.")
        lines = table_lines(summary, choice, current, header)
        (self.out / f"{choice.suffix}_table.md").write_text("\n".join(lines) + "\n")
        (self.out / f"{choice.suffix}_results.json").write_text(json.dumps(
            {"demo": str(self.demo.out), "choice": asdict(choice), "seeds": self.seeds, **summary}, indent=2))
        print("\n".join(lines))
        return summary
