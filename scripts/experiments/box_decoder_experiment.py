"""Box-decoder experiment: repeated dual-output student trainings on a finished demo's data.

The dual-output (DO) student's second decoder costs time: the paper's full copy of the segmentation
decoder (``plan-dual --box-decoder-convs full``) makes an iteration ~1.70x the single-output student's in
convolution FLOPs, the default box decoder with one convolution per stage ~1.47x
(``scripts/benchmarks/dual_decoder.py``).
Whether the lighter one costs accuracy cannot be read from one training: on 10 strong cases, when a
CT-only network first finds tumours varies a lot from run to run, and the demo has 12 test cases. So
this script trains the DO student ``--repeats`` times per box decoder on the same data (a finished
``nnunet_ts demo`` run: its pseudo-labelled student dataset, plans and budget) and tests every network
on an enlarged test set: the demo's synthetic cohort regenerated with ``--extra-test`` more test cases
(case i depends only on the seed and i, so the demo's own cases come out byte-identical; checked).
The demo's own trained CT-only networks are tested on it too, as reference rows; ``--demo`` must be a
finished demo of this version (its networks under today's trainer names).

Variants: ``full`` (the box decoder copies the segmentation decoder, the paper's DO student) or an
integer N (N convolutions per box-decoder stage). Each variant is a configuration added with
``plan-dual``'s function to a copy of the demo's plans (the preprocessed data are linked, not copied);
nothing in the demo's folder changes. It inherits the demo's student configuration, so
``DualDecoderStudentTrainer`` trains it with the demo's student settings (budget, Dice smooth,
mirroring), as it trained the demo's DO student.

Writes into OUT: ``nnUNet_raw`` (the test dataset), ``nnUNet_preprocessed`` (links + plans copy),
``runs/<variant>_r<k>`` (each run's nnUNet_results), ``predictions/``, ``logs/``, and
``box_decoder_table.md`` / ``box_decoder_results.json``: per run DSC, DSC-TP, lesion F1, pooled lesion
counts and the onset epoch (first epoch whose pseudo Dice on training patches exceeds 0.05); per
variant the mean and spread over its runs. Every step is skipped when its output exists, so a rerun
resumes (an interrupted training continues from its latest checkpoint).

Run time: not recorded; with the defaults (2 variants x 2 repeats) about 40 minutes on 2 cores on the
default CPU demo (estimate: four DO trainings of ~5 min, eight predictions of 60 test cases), about 1.5 hours
on the ``--epochs 80`` demo (its DO student trained for 20 min).

    python scripts/experiments/box_decoder_experiment.py OUT --demo demo_output/scarce-cpu-e80 \
        --variants full 1 --repeats 3
"""
from __future__ import annotations

import argparse
import filecmp
import json
import os
import shutil
import statistics
import sys
from pathlib import Path

from nnunet_ts.cli.plan_dual import box_decoder_convs
from nnunet_ts.demo.config import MODELS, PSEUDO_ID, STUDENT_CONFIG, STUDENT_ID

TEST_ID, TEST_NAME = 799, "BoxDecoderTest"
DO_TRAINER = "DualDecoderStudentTrainer"
REFERENCE = tuple(m for m in MODELS if m.test_input == STUDENT_ID)  # CT-only (the box teacher needs its box)


def variant(text: str) -> str:
    """``--variants`` entry, checked as ``plan-dual --box-decoder-convs`` checks it (``full`` or N >= 1)."""
    box_decoder_convs(text)
    return text


def variant_settings(variant: str):
    """The dual-decoder settings of a variant: ``full`` -> None (as the segmentation decoder), ``N`` -> N."""
    from nnunet_ts.planners.dual_decoder_plans import DualDecoderSettings

    return DualDecoderSettings(box_decoder_convs=box_decoder_convs(variant))


def summarise(runs: dict[str, dict]) -> dict[str, dict]:
    """Per variant (run name without ``_r<k>``): mean, population std, min and max of DSC and F1 over runs."""
    by_variant: dict[str, list[dict]] = {}
    for name, result in runs.items():
        by_variant.setdefault(name.rsplit("_r", 1)[0], []).append(result)
    out = {}
    for variant, results in by_variant.items():
        out[variant] = {"n_runs": len(results)}
        for metric in ("dsc", "f1"):
            values = [r[metric] for r in results]
            out[variant][metric] = {"mean": statistics.fmean(values), "std": statistics.pstdev(values),
                                    "min": min(values), "max": max(values)}
    return out


def _link_tree(src: Path, dst: Path, copy: tuple[str, ...]) -> None:
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


def _result(eval_dir: Path, model_folder: Path) -> dict:
    from nnunet_ts.nnunet.training_log import onset_epoch, training_log_text

    summary = json.loads((eval_dir / "evaluation_summary.json").read_text())
    metrics, pooled = summary["metrics"], summary["pooled"]
    return {"dsc": metrics["dsc"]["mean"], "dsc_tp": metrics["dsc_tp"]["mean"] if metrics["dsc_tp"]["n"] else None,
            "f1": metrics["f1"]["mean"], "tp": pooled["tp"], "fp": pooled["fp"], "fn": pooled["fn"],
            "n_cases": summary["n_cases"], "onset_epoch": onset_epoch(training_log_text(model_folder / "fold_all"))}


def stored_demo(folder: Path):
    """The ``Demo`` of a finished ``nnunet_ts demo`` output folder, rebuilt from the settings it recorded."""
    from nnunet_ts.demo.config import Budget, Cohort, DemoConfig
    from nnunet_ts.demo.pipeline import SETTINGS_FILE, Demo

    settings_file = folder / SETTINGS_FILE
    if not settings_file.is_file():
        raise SystemExit(f"{settings_file} not found: --demo must be the output folder of a finished "
                         f"`nnunet_ts demo` run")
    settings = json.loads(settings_file.read_text())["settings"]
    if settings.get("cases"):
        raise SystemExit(f"{folder} ran on given cases ({settings['cases']}); this experiment regenerates "
                         f"the demo's synthetic cohort and needs a demo on the embedded synthetic data")
    c = settings["config"]
    config = DemoConfig(**{**c, "cohort": Cohort(**c["cohort"]), "synth_shape": tuple(c["synth_shape"]),
                           "tiny_patch": tuple(c["tiny_patch"]), "teacher_budget": Budget(**c["teacher_budget"]),
                           "student_budget": Budget(**c["student_budget"])})
    return Demo(config, folder)


class Experiment:
    """Paths, environment and the resumable steps of one experiment folder."""

    def __init__(self, out: Path, demo: Path, device: str, np_: int):
        from nnunet_ts.errors import InputError
        from nnunet_ts.nnunet.stock_commands import CommandRunner, nnunet_environment

        self.out, self.device, self.np = out.resolve(), device, np_
        self.demo = stored_demo(demo.resolve())
        self.config = self.demo.config
        if getattr(self.config, "lung_crops", False) or (self.demo.out / "sets.json").exists():
            raise SystemExit(f"{self.demo.out} is a demo of the current layout (lung crops, training seeds, "
                             f"validation and test sets); this experiment reads the earlier layout only")
        for model in REFERENCE:
            try:
                trained = (self.demo.model_folder(model) / "fold_all" / "checkpoint_final.pth").is_file()
            except InputError:  # the demo has no results for that dataset
                trained = False
            if not trained:
                raise SystemExit(f"{self.demo.out} has no trained {model.label} ({model.trainer} on "
                                 f"{model.configuration}): --demo must be a finished `nnunet_ts demo` run of this "
                                 f"version (earlier versions trained under other trainer names); rerun the demo")
        self.out.mkdir(parents=True, exist_ok=True)
        self.env = nnunet_environment(self.out, device, np_)
        self.runner = CommandRunner(self.env, self.out / "logs")

    def student_raw(self) -> Path:
        """The demo's pseudo-labelled student dataset in its nnUNet_raw (its segboxesTr feed the trainer)."""
        from nnunet_ts.nnunet.stock_commands import dataset_folder

        return dataset_folder(self.demo.raw, PSEUDO_ID)

    def runner_for(self, results: Path):
        """The runner with nnU-Net's results folder at ``results``."""
        from nnunet_ts.nnunet.stock_commands import CommandRunner

        return CommandRunner({**self.env, "nnUNet_results": str(results)}, self.runner.log_dir)

    def make_test_set(self, extra_test: int) -> Path:
        """The demo's cohort with ``extra_test`` more test cases, as a student dataset; returns its folder."""
        from dataclasses import replace

        from nnunet_ts.demo.pipeline import Demo
        from nnunet_ts.nnunet.stock_commands import dataset_folder, quoted

        cases, cohort = self.out / "cases", self.config.cohort
        if not (cases / "cases.csv").is_file():
            # the demo's own synth step, for the demo's settings with more test cases, into OUT/cases
            larger = Demo(replace(self.config, cohort=replace(cohort, n_test=cohort.n_test + extra_test),
                                  num_processes=self.np), self.out)
            larger.runner = self.runner
            next(step for step in larger.steps() if step.name == "synth").action()
        for ct in sorted(self.demo.cases.glob("*_ct.nii.gz")):
            if not filecmp.cmp(ct, cases / ct.name, shallow=False):
                raise SystemExit(f"{cases / ct.name} differs from the demo's {ct}: the demo was made by another "
                                 f"version of the generator; rerun the demo with this version")
        raw = self.out / "nnUNet_raw"
        if not list(raw.glob(f"Dataset{TEST_ID}_*")):
            self.runner.run(f"nnunet_ts dataset student --cases {quoted(cases)} -d {TEST_ID} -n {TEST_NAME} "
                            f"--workers {self.np}", "dataset_test")
        return dataset_folder(raw, TEST_ID)

    def add_configurations(self, variants: list[str]) -> dict[str, str]:
        """Link the demo's student dataset (raw: its segboxes; preprocessed: data, plans copied) and add one
        dual-decoder configuration per variant; returns ``{variant: configuration}``."""
        from nnunet_ts.nnunet.stock_commands import dataset_folder
        from nnunet_ts.planners.dual_decoder_plans import add_dual_decoder_configuration

        student_raw = self.student_raw()
        link = self.out / "nnUNet_raw" / student_raw.name
        if not link.is_symlink():
            link.symlink_to(student_raw)
        pre = self.out / "nnUNet_preprocessed" / student_raw.name
        _link_tree(dataset_folder(self.demo.preprocessed, PSEUDO_ID), pre,
                   copy=("nnUNetPlans.json",))
        return {v: add_dual_decoder_configuration(pre / "nnUNetPlans.json", STUDENT_CONFIG,
                                                  name=f"{STUDENT_CONFIG}_box_{v}", settings=variant_settings(v),
                                                  overwrite=True)[0]
                for v in variants}

    def test(self, name: str, test: Path, results: Path, dataset_id: int, configuration: str, trainer: str,
             model_folder: Path) -> dict:
        """Predict the test set with a trained model (final checkpoint) and score it; redone when the
        evaluation is missing or older than the model (retrained, e.g. under another trainer name)."""
        from nnunet_ts.evaluation.folder import evaluate_folders
        from nnunet_ts.nnunet.stock_commands import quoted

        pred, evaluation = self.out / "predictions" / name, self.out / "evaluation" / name
        summary = evaluation / "evaluation_summary.json"
        checkpoint = model_folder / "fold_all" / "checkpoint_final.pth"
        if not summary.is_file() or summary.stat().st_mtime < checkpoint.stat().st_mtime:
            shutil.rmtree(pred, ignore_errors=True)
            self.runner_for(results).run(
                f"nnUNetv2_predict -i {quoted(test / 'imagesTs')} -o {quoted(pred)} -d {dataset_id} "
                f"-c {configuration} -f all -tr {trainer} -chk checkpoint_final.pth -device {self.device} "
                f"--disable_tta -step_size {self.config.predict_step_size} -npp {self.np} -nps {self.np}",
                f"predict_{name}")
            evaluate_folders(pred, test / "labelsTs", evaluation, overwrite=True, progress=False)
        return _result(evaluation, model_folder)

    def train(self, name: str, configuration: str) -> tuple[Path, Path]:
        """Train the DO student once (resumed if interrupted); returns (results root, model folder)."""
        results = self.out / "runs" / name
        folder = results / self.student_raw().name / f"{DO_TRAINER}__nnUNetPlans__{configuration}"
        if not (folder / "fold_all" / "checkpoint_final.pth").is_file():
            resume = (folder / "fold_all" / "checkpoint_latest.pth").is_file()
            self.runner_for(results).run(
                f"nnUNetv2_train {PSEUDO_ID} {configuration} all -tr {DO_TRAINER} -device {self.device}"
                + (" --c" if resume else ""), f"train_{name}", epochs=self.config.student_budget.epochs)
        return results, folder


def table_lines(reference: dict[str, dict], runs: dict[str, dict], header: str) -> list[str]:
    """The markdown tables: every run, then each variant's mean and spread."""
    from nnunet_ts.demo.report import cell

    lines = [header, "", "| run | DSC % | DSC-TP % | lesion F1 % | lesions TP / FP / FN | onset epoch |",
             "|---|---|---|---|---|---|"]
    for name, r in {**reference, **{f"DO, box decoder {n}": r for n, r in runs.items()}}.items():
        dsc_tp = "-" if r["dsc_tp"] is None else f"{100 * r['dsc_tp']:.1f}"
        onset = "never" if r["onset_epoch"] is None else r["onset_epoch"]
        lines.append(f"| {name} | {100 * r['dsc']:.1f} | {dsc_tp} | {100 * r['f1']:.1f} | "
                     f"{r['tp']} / {r['fp']} / {r['fn']} | {onset} |")
    lines += ["", "| box decoder | runs | DSC % mean ± std (min-max) | lesion F1 % mean ± std (min-max) |",
              "|---|---|---|---|"]

    def spread(m: dict) -> str:
        return f"{cell(m)} ({100 * m['min']:.1f}-{100 * m['max']:.1f})"

    for v, s in summarise(runs).items():
        lines.append(f"| {v} | {s['n_runs']} | {spread(s['dsc'])} | {spread(s['f1'])} |")
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path)
    ap.add_argument("--demo", type=Path, required=True, help="a finished `nnunet_ts demo` output folder")
    ap.add_argument("--variants", nargs="+", type=variant, default=["full", "1"],
                    help="box decoders: 'full' (copy of the segmentation decoder) or N convolutions per stage")
    ap.add_argument("--repeats", type=int, default=2, help="trainings per variant")
    ap.add_argument("--extra-test", type=int, default=48, help="test cases added to the demo's")
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--np", type=int, default=max(1, (os.cpu_count() or 2) // 2), help="CPU workers")
    args = ap.parse_args()
    exp = Experiment(args.out, args.demo, args.device, args.np)
    test = exp.make_test_set(args.extra_test)
    configurations = exp.add_configurations(args.variants)
    reference = {}
    for model in REFERENCE:
        reference[f"demo {model.label}"] = exp.test(f"demo_{model.key}", test, exp.demo.results, model.dataset_id,
                                                    model.configuration, model.trainer, exp.demo.model_folder(model))
    runs = {}
    for k in range(1, args.repeats + 1):  # round by round: stopped early, every variant has as many runs
        for v in args.variants:
            results, folder = exp.train(f"{v}_r{k}", configurations[v])
            runs[f"{v}_r{k}"] = exp.test(f"{v}_r{k}", test, results, PSEUDO_ID, configurations[v], DO_TRAINER,
                                         folder)

    n_test = next(iter(reference.values()))["n_cases"]
    lines = table_lines(reference, runs, f"Box-decoder experiment on {exp.demo.out} "
                                         f"({exp.config.student_budget.epochs} epochs per training, "
                                         f"{n_test} test cases: the demo's {exp.config.cohort.n_test} + "
                                         f"{args.extra_test}).")
    (exp.out / "box_decoder_table.md").write_text("\n".join(lines) + "\n")
    (exp.out / "box_decoder_results.json").write_text(json.dumps(
        {"demo": str(exp.demo.out), "args": {k: str(v) for k, v in vars(args).items()}, "reference": reference,
         "runs": runs, "per_variant": summarise(runs)}, indent=2))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
