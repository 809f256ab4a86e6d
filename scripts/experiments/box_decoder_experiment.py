"""Box-decoder experiment: the DO student with another box decoder, per training seed, on the validation set.

The dual-output (DO) student's second decoder costs time: the paper's full copy of the segmentation
decoder (``plan-dual --box-decoder-convs full``) makes an iteration ~1.70x the single-output student's in
convolution FLOPs, the default box decoder with one convolution per stage ~1.47x
(``scripts/benchmarks/dual_decoder.py``). Whether the lighter one costs accuracy is a design choice, so
it is decided on the validation set, never on the test set.

On a finished ``nnunet_ts demo`` run (``--demo``), for each variant and each of the demo's training seeds
this script trains the DO student again on the demo's own data (its pseudo-labelled dataset, plans,
budget, Dice smooth and training seed), the box decoder being the only change, and scores it on the
demo's *validation* cases exactly as the demo scores its networks (lung crops predicted, pasted back onto
the whole CT). The reference is the demo's own DO student of the same seed (the default box decoder).
The test cases are neither predicted nor read.

Variants: ``full`` (the box decoder copies the segmentation decoder, the paper's DO student) or an
integer N (N convolutions per box-decoder stage). Each is a configuration
``demo_student_seed<k>_box_<variant>`` added with ``plan-dual``'s function to a copy of the demo's plans
(the preprocessed data are linked, not copied), inheriting ``demo_student_seed<k>``; nothing in the
demo's folder changes.

Writes into OUT: ``nnUNet_raw`` / ``nnUNet_preprocessed`` (links, plans copy), ``nnUNet_results``,
``validation_inputs/`` (links to the validation crops), ``predictions/``, ``evaluation/``, ``logs/``, and
``box_decoder_table.md`` / ``box_decoder_results.json``: per seed the DSC of the demo's DO and of each
variant on the tumour-bearing validation cases and their onset epochs (first epoch whose pseudo Dice on
training patches exceeds 0.05); over seeds, each variant minus the demo's DO with a paired bootstrap 95 %
CI (each case's DSC averaged over the seeds first, as the demo's report does). Every step is skipped
when its output exists, so a rerun resumes (an interrupted training continues from its latest
checkpoint).

Run time: one DO training per variant and seed (on the 160-epoch CPU benchmark run about 14 minutes each
on 2 cores, estimate from its 80-epoch trainings) plus a prediction of the validation crops (well under
a minute).

    python scripts/experiments/box_decoder_experiment.py OUT --demo demo_output/scarce-cpu-seeds3-e160 \
        --variants full
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import sys
from pathlib import Path

from nnunet_ts.cli.plan_dual import box_decoder_convs
from nnunet_ts.demo.config import MODELS, PSEUDO_ID, STUDENT_CONFIG, STUDENT_ID

DO = next(m for m in MODELS if m.key == "do_student")


def variant(text: str) -> str:
    """``--variants`` entry, checked as ``plan-dual --box-decoder-convs`` checks it (``full`` or N >= 1)."""
    box_decoder_convs(text)
    return text


def variant_settings(variant: str):
    """The dual-decoder settings of a variant: ``full`` -> None (as the segmentation decoder), ``N`` -> N."""
    from nnunet_ts.planners.dual_decoder_plans import DualDecoderSettings

    return DualDecoderSettings(box_decoder_convs=box_decoder_convs(variant))


def tumour_dsc(per_case_csv: Path, cases: list[str]) -> dict[str, float]:
    """``{case: DSC}`` of the tumour-bearing ``cases`` in an ``evaluation_per_case.csv``.

    Raises:
        SystemExit: a case missing from the file.
    """
    with open(per_case_csv, newline="") as f:
        rows = {r["case_id"]: r for r in csv.DictReader(f)}
    missing = [c for c in cases if c not in rows]
    if missing:
        raise SystemExit(f"{per_case_csv} has no row for validation case(s) {missing[:3]}")
    return {c: float(rows[c]["dsc"]) for c in cases if int(rows[c]["n_gt_lesions"]) > 0}


def seed_mean(per_seed: list[dict[str, float]]) -> dict[str, float]:
    """Each case's value averaged over the seeds (the cases of the first seed)."""
    return {c: sum(s[c] for s in per_seed) / len(per_seed) for c in per_seed[0]}


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


def _link_folder(folder: Path, targets: dict[str, Path]) -> Path:
    """``folder`` holding a link ``name -> target`` per entry, made whole (a ``.partial`` folder renamed)."""
    tmp = folder.with_name(folder.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name, target in targets.items():
        (tmp / name).symlink_to(target.resolve())
    tmp.rename(folder)
    return folder


def stored_demo(folder: Path):
    """The ``Demo`` of a finished ``nnunet_ts demo`` output folder, rebuilt from the settings it recorded."""
    from nnunet_ts.demo.config import Budget, Cohort, DemoConfig
    from nnunet_ts.demo.pipeline import SETTINGS_FILE, Demo

    settings_file = folder / SETTINGS_FILE
    if not settings_file.is_file():
        raise SystemExit(f"{settings_file} not found: --demo must be the output folder of a finished "
                         f"`nnunet_ts demo` run")
    settings = json.loads(settings_file.read_text())["settings"]
    c = settings["config"]
    try:
        config = DemoConfig(**{**c, "cohort": Cohort(**c["cohort"]), "synth_shape": tuple(c["synth_shape"]),
                               "tiny_patch": tuple(c["tiny_patch"]),
                               "teacher_budget": Budget(**c["teacher_budget"]),
                               "student_budget": Budget(**c["student_budget"])})
    except TypeError as exc:
        raise SystemExit(f"{settings_file} was written by another version of the demo ({exc}); rerun the demo "
                         f"with this version") from None
    return Demo(config, folder, cases=Path(settings["cases"]) if settings.get("cases") else None)


class Experiment:
    """Paths, environment and the resumable steps of one experiment folder."""

    def __init__(self, out: Path, demo: Path, device: str, np_: int):
        from nnunet_ts.demo.config import Run
        from nnunet_ts.demo.sets import read_sets
        from nnunet_ts.nnunet.stock_commands import CommandRunner, nnunet_environment

        self.out, self.device, self.np = out.resolve(), device, np_
        self.demo = stored_demo(demo.resolve())
        self.config = self.demo.config
        self.validation = read_sets(self.demo.sets_file()).get("validation", [])
        if not self.validation:
            raise SystemExit(f"{self.demo.sets_file()} names no validation case: --demo must be a finished demo "
                             f"with a validation set (--n-validation > 0)")
        self.seeds = list(range(self.config.train_seeds))
        for seed in self.seeds:
            run = Run(DO, seed)
            if not (self.demo.evaluation(run, "no_postprocessing") / "evaluation_per_case.csv").is_file():
                raise SystemExit(f"{self.demo.out} has no evaluated DO student of training seed {seed}: --demo "
                                 f"must be a finished `nnunet_ts demo` run; rerun the demo to finish it")
        self.out.mkdir(parents=True, exist_ok=True)
        self.env = nnunet_environment(self.out, device, np_)
        self.runner = CommandRunner(self.env, self.out / "logs")

    def validation_inputs(self) -> Path:
        """A folder of links to the CT files of the validation cases (their lung crops) in the demo's
        held-out student dataset: the only images this experiment predicts."""
        from nnunet_ts.nnunet.stock_commands import dataset_folder

        folder = self.out / "validation_inputs"
        if folder.is_dir():
            return folder
        source = dataset_folder(self.demo.raw, STUDENT_ID) / "imagesTs"
        names = ([f"{case}_{side}_0000.nii.gz" for case in self.validation for side in ("left", "right")]
                 if self.config.lung_crops else [f"{case}_0000.nii.gz" for case in self.validation])
        images = [source / n for n in names if (source / n).is_file()]
        if not images:
            raise SystemExit(f"no validation image in {source}: the demo's held-out dataset is incomplete")
        return _link_folder(folder, {image.name: image for image in images})

    def validation_masks(self) -> Path:
        """A folder of links to the whole-CT masks of the validation cases."""
        folder = self.out / "validation_masks"
        if folder.is_dir():
            return folder
        return _link_folder(folder, {f"{c}.nii.gz": self.demo.held_out_masks() / f"{c}.nii.gz"
                                     for c in self.validation})

    def add_configurations(self, variants: list[str]) -> dict[tuple[str, int], str]:
        """Link the demo's student dataset (raw: its segboxes; preprocessed: data, plans copied) and add one
        dual-decoder configuration per variant and seed; returns ``{(variant, seed): configuration}``."""
        from nnunet_ts.nnunet.stock_commands import dataset_folder
        from nnunet_ts.planners.dual_decoder_plans import add_dual_decoder_configuration

        student_raw = dataset_folder(self.demo.raw, PSEUDO_ID)
        link = self.out / "nnUNet_raw" / student_raw.name
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.is_symlink():
            link.symlink_to(student_raw)
        pre = self.out / "nnUNet_preprocessed" / student_raw.name
        _link_tree(dataset_folder(self.demo.preprocessed, PSEUDO_ID), pre, copy=("nnUNetPlans.json",))
        return {(v, s): add_dual_decoder_configuration(
                    pre / "nnUNetPlans.json", f"{STUDENT_CONFIG}_seed{s}", name=f"{STUDENT_CONFIG}_seed{s}_box_{v}",
                    settings=variant_settings(v), overwrite=True)[0]
                for v in variants for s in self.seeds}

    def train(self, configuration: str) -> Path:
        """Train the DO student on a configuration (resumed if interrupted); returns its model folder."""
        from nnunet_ts.nnunet.stock_commands import dataset_folder

        dataset = dataset_folder(self.demo.raw, PSEUDO_ID).name
        folder = self.out / "nnUNet_results" / dataset / f"{DO.trainer}__nnUNetPlans__{configuration}"
        if not (folder / "fold_all" / "checkpoint_final.pth").is_file():
            resume = (folder / "fold_all" / "checkpoint_latest.pth").is_file()
            self.runner.run(f"nnUNetv2_train {PSEUDO_ID} {configuration} all -tr {DO.trainer} -device {self.device}"
                            + (" --c" if resume else ""), f"train_{configuration}",
                            epochs=self.config.student_budget.epochs)
        return folder

    def validate(self, configuration: str, model_folder: Path) -> Path:
        """Predict the validation cases (final checkpoint), paste crops back, score; returns the per-case
        CSV. Redone when the evaluation is missing or older than the model."""
        from nnunet_ts.demo.crops import paste_predictions
        from nnunet_ts.evaluation.folder import evaluate_folders
        from nnunet_ts.nnunet.stock_commands import quoted

        pred, evaluation = self.out / "predictions" / configuration, self.out / "evaluation" / configuration
        per_case = evaluation / "evaluation_per_case.csv"
        checkpoint = model_folder / "fold_all" / "checkpoint_final.pth"
        if per_case.is_file() and per_case.stat().st_mtime >= checkpoint.stat().st_mtime:
            return per_case
        raw_pred = pred.with_name(pred.name + "_crops") if self.config.lung_crops else pred
        shutil.rmtree(raw_pred, ignore_errors=True)
        predict_np = 0 if self.device == "cpu" else self.np
        self.runner.run(
            f"nnUNetv2_predict -i {quoted(self.validation_inputs())} -o {quoted(raw_pred)} -d {PSEUDO_ID} "
            f"-c {configuration} -f all -tr {DO.trainer} -chk checkpoint_final.pth -device {self.device} "
            f"--disable_tta -step_size {self.config.predict_step_size} -npp {predict_np} -nps {predict_np}",
            f"predict_{configuration}")
        if self.config.lung_crops:
            paste_predictions(raw_pred, self.demo.crops, self.validation, pred)
        evaluate_folders(pred, self.validation_masks(), evaluation, overwrite=True, progress=False)
        return per_case


def onset(model_folder: Path) -> int | None:
    from nnunet_ts.nnunet.training_log import onset_epoch, training_log_text

    return onset_epoch(training_log_text(model_folder / "fold_all"))


def summarise(per_seed: dict[str, list[dict[str, float]]], onsets: dict[str, list[int | None]],
              reference: str) -> dict:
    """Per network: DSC per seed and over seeds; each other network minus ``reference`` with its paired
    bootstrap 95 % CI over the cases (each case averaged over the seeds first); all in DSC points."""
    from nnunet_ts.evaluation.statistics import compare_networks

    def mean(d: dict[str, float]) -> float:
        return 100 * sum(d.values()) / len(d)

    out = {"networks": {}, "comparisons": {}}
    for name, seeds in per_seed.items():
        out["networks"][name] = {"per_seed": [mean(s) for s in seeds], "mean": mean(seed_mean(seeds)),
                                 "onset_epochs": onsets[name], "n_cases": len(seeds[0])}
    ref = seed_mean(per_seed[reference])
    for name, seeds in per_seed.items():
        if name != reference:
            d = compare_networks(seed_mean(seeds), ref)
            out["comparisons"][name] = {"mean": 100 * d.mean, "low": 100 * d.low, "high": 100 * d.high,
                                        "n_cases": d.n_cases}
    return out


def table_lines(summary: dict, reference: str, header: str) -> list[str]:
    """The markdown tables: DSC per seed and over seeds, then each variant minus the reference."""
    nets = summary["networks"]
    n_seeds = len(next(iter(nets.values()))["per_seed"])
    seeds = " | ".join(f"seed {k}" for k in range(n_seeds))
    lines = [header, "", f"| DO student | {seeds} | mean over seeds | onset epochs |",
             "|---|" + "---|" * (n_seeds + 2)]
    for name, n in nets.items():
        onsets = ", ".join("never" if e is None else str(e) for e in n["onset_epochs"])
        per_seed = " | ".join(f"{v:.1f}" for v in n["per_seed"])
        lines.append(f"| {name} | {per_seed} | {n['mean']:.1f} | {onsets} |")
    lines += ["", "| comparison (validation) | mean DSC difference | paired bootstrap 95 % CI |", "|---|---|---|"]
    for name, c in summary["comparisons"].items():
        lines.append(f"| {name} − {reference} | {c['mean']:+.1f} | [{c['low']:+.1f}, {c['high']:+.1f}] |")
    return lines


def main() -> int:
    from nnunet_ts.demo.config import Run

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path)
    ap.add_argument("--demo", type=Path, required=True, help="a finished `nnunet_ts demo` output folder")
    ap.add_argument("--variants", nargs="+", type=variant, default=["full"],
                    help="box decoders to compare with the demo's: 'full' (copy of the segmentation decoder) or "
                         "N convolutions per stage (default: full)")
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--np", type=int, default=max(1, (os.cpu_count() or 2) // 2), help="CPU workers")
    args = ap.parse_args()
    exp = Experiment(args.out, args.demo, args.device, args.np)
    configurations = exp.add_configurations(args.variants)
    from nnunet_ts.planners.dual_decoder_plans import DualDecoderSettings

    default = DualDecoderSettings().box_decoder_convs  # the demo's DO student trains with the defaults
    reference = f"demo's DO (box decoder {'full' if default is None else default})"
    per_seed = {reference: [tumour_dsc(exp.demo.evaluation(Run(DO, s), "no_postprocessing") /
                                       "evaluation_per_case.csv", exp.validation) for s in exp.seeds]}
    onsets = {reference: [onset(exp.demo.model_folder(Run(DO, s))) for s in exp.seeds]}
    for seed in exp.seeds:  # seed by seed: stopped early, every variant has as many seeds
        for v in args.variants:
            name = f"box decoder {v}"
            folder = exp.train(configurations[(v, seed)])
            per_seed.setdefault(name, []).append(tumour_dsc(exp.validate(configurations[(v, seed)], folder),
                                                            exp.validation))
            onsets.setdefault(name, []).append(onset(folder))
    summary = summarise(per_seed, onsets, reference)
    n = summary["networks"][reference]["n_cases"]
    lines = table_lines(summary, reference,
                        f"Box-decoder experiment on {exp.demo.out}: DSC % on the {n} tumour-bearing validation "
                        f"cases, {exp.config.student_budget.epochs} x {exp.config.student_budget.iterations} "
                        f"iterations per training, training seeds {', '.join(map(str, exp.seeds))}.")
    (exp.out / "box_decoder_table.md").write_text("\n".join(lines) + "\n")
    (exp.out / "box_decoder_results.json").write_text(json.dumps(
        {"demo": str(exp.demo.out), "args": {k: str(v) for k, v in vars(args).items()}, **summary}, indent=2))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
