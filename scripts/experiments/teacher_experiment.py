"""The teacher experiment (paper Tables 2-3): box-guided teacher vs the CT-only network.

Same synthetic strong cases, same plans, same budget; three trainings, each a trainer of ``trainers/``
on a configuration that ``nnunet_ts budget-config`` adds (``--epochs`` x ``--iterations``, no
mirroring, no final validation on fold ``all``: the experiment tests its own held-out cases):

  box      BoxTeacherTrainer on ``exp``: perturbed boxes in half of the samples
  exact    BoxTeacherTrainer on ``exp_exact`` (``--box-perturbation 0``): exact boxes only
  ct_only  BaselineTrainer (nnU-Net's default trainer) on ``exp`` of the CT-only dataset: the CT channel
           alone (the paper's "point guided")

Each box teacher is tested on the held-out cases with the exact boxes and with perturbed boxes
(Sun et al.: scale 0.9-1.2, edges moved by < 1/10 of the side, one fixed draw per case). Writes
``teacher_table.md`` and ``teacher_results.json`` into OUT. Every step runs the stock commands (printed
as they run, their output in OUT/logs/) and is skipped when its output exists, so a rerun resumes.

Run time: not recorded; about 35 minutes on 2 cores with the defaults (estimate: three 3d_tiny trainings of
40 x 25 iterations at ~10 s per epoch, plus synthesis, planning and five test-set predictions).

    python scripts/experiments/teacher_experiment.py OUT --scale gpu --device cuda      # real 3d_fullres plans
    python scripts/experiments/teacher_experiment.py OUT --scale cpu --device cpu       # 3d_tiny, a 2-core CPU
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

TEACHER_ID, CT_ONLY_ID = 611, 612
RUNS = {  # name: (dataset id, trainer, configuration), in training order (the main comparison first)
    "box": (TEACHER_ID, "BoxTeacherTrainer", "exp"),
    "ct_only": (CT_ONLY_ID, "BaselineTrainer", "exp"),
    "exact": (TEACHER_ID, "BoxTeacherTrainer", "exp_exact"),
}
# configuration: its budget-config options besides the budget (two trainings of one trainer on one
# dataset need two configurations: the results folder is <trainer>__nnUNetPlans__<configuration>)
CONFIGURATION_OPTIONS = {"exp": "", "exp_exact": " --box-perturbation 0"}
VAL_ITERATIONS = 5
RESTRICT_MARGIN_MM = 5.0


def write_perturbed_inputs(images: Path, out: Path, seed: int) -> None:
    """imagesTs with each case's segbox (_0001) perturbed once (probability 1), CT linked."""
    from nnunet_ts.boxes.perturbation import BoxPerturbation, perturb_segbox
    from nnunet_ts.io.images import read_image, write_image

    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    config = BoxPerturbation(probability=1.0)
    for i, box_file in enumerate(sorted(images.glob("*_0001.nii.gz"))):
        case = box_file.name[:-len("_0001.nii.gz")]
        segbox, geometry = read_image(box_file)
        perturbed = perturb_segbox(segbox, config, np.random.default_rng([seed, i]))
        write_image(tmp / box_file.name, perturbed, geometry)
        os.symlink((images / f"{case}_0000.nii.gz").resolve(), tmp / f"{case}_0000.nii.gz")
    tmp.rename(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path)
    ap.add_argument("--scale", choices=("cpu", "gpu"), default="cpu")
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--n-strong", type=int, default=40)
    ap.add_argument("--n-test", type=int, default=20)
    ap.add_argument("--shape", type=int, nargs=3, default=None, metavar=("Z", "Y", "X"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--iterations", type=int, default=25, help="training iterations per epoch")
    ap.add_argument("--parallel", action="store_true", help="train the networks at once")
    ap.add_argument("--step-size", type=float, default=0.5,
                    help="sliding-window step of the test predictions, a fraction of the patch (nnU-Net: 0.5)")
    ap.add_argument("--runs", nargs="+", choices=tuple(RUNS), default=list(RUNS),
                    help="which networks to train and test")
    ap.add_argument("--np", type=int, default=max(1, (os.cpu_count() or 2) // 2), help="CPU workers")
    ap.add_argument("--train-seed", type=int, default=None,
                    help="training seed of every network (budget-config --seed; default: unseeded)")
    ap.add_argument("--prepare-only", action="store_true",
                    help="stop after synthesis, datasets and planning (a base that several runs copy)")
    args = ap.parse_args()

    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    from nnunet_ts.nnunet.stock_commands import CommandRunner, dataset_folder, nnunet_environment, quoted
    from nnunet_ts.planners.plans_file import has_configuration

    # nnU-Net's folders under OUT, our trainers found, CPU-friendly worker counts; one log per command
    runner = CommandRunner(nnunet_environment(out, args.device, args.np), out / "logs")
    timings: dict[str, float] = {}

    cases = out / "cases"
    if not (cases / "cases.csv").is_file():
        shape = f" --shape {' '.join(map(str, args.shape))}" if args.shape else ""
        runner.run(f"nnunet_ts synth {quoted(cases)} --n-strong {args.n_strong} --n-weak 0 --n-test {args.n_test} "
                   f"--seed {args.seed}{shape}", "synth")
    raw = out / "nnUNet_raw"
    for kind, did, name in (("teacher", TEACHER_ID, "TeacherExp"), ("student", CT_ONLY_ID, "CTOnlyExp")):
        if not list(raw.glob(f"Dataset{did}_*")):
            runner.run(f"nnunet_ts dataset {kind} --cases {quoted(cases)} -d {did} -n {name} --workers {args.np}",
                       f"dataset_{kind}")
    pre = out / "nnUNet_preprocessed"
    source = "3d_fullres" if args.scale == "gpu" else "3d_tiny"
    for did, plan_cmd in ((TEACHER_ID, f"nnunet_ts plan-teacher -d {TEACHER_ID} -np {args.np}"),
                          (CT_ONLY_ID, f"nnUNetv2_plan_and_preprocess -d {CT_ONLY_ID} -c 3d_fullres "
                                       f"-np {args.np} --verify_dataset_integrity")):
        plans_file = next(iter(pre.glob(f"Dataset{did}_*/nnUNetPlans.json")), None)
        t0 = time.time()
        if plans_file is None:
            runner.run(plan_cmd, f"plan_{did}")
            plans_file = next(iter(pre.glob(f"Dataset{did}_*/nnUNetPlans.json")))
        if args.scale == "cpu" and not has_configuration(plans_file, "3d_tiny"):
            runner.run(f"nnunet_ts tiny-plans -d {did} --overwrite", f"tiny_plans_{did}")
        if args.prepare_only:
            continue
        seed = "" if args.train_seed is None else f" --seed {args.train_seed}"
        # written on every run, so that a rerun with another budget or seed trains on what it asks for
        for configuration in sorted({c for d, _, c in RUNS.values() if d == did}):
            runner.run(f"nnunet_ts budget-config -d {did} -c {configuration} --source {source} "
                       f"--epochs {args.epochs} --iterations {args.iterations} --val-iterations {VAL_ITERATIONS} "
                       f"--no-mirroring --final-validation except_fold_all{seed}"
                       f"{CONFIGURATION_OPTIONS[configuration]} --overwrite", f"budget_{did}_{configuration}")
        timings[f"plan_{did}"] = time.time() - t0
    if args.prepare_only:
        return 0

    results = out / "nnUNet_results"

    def model_folder(name: str) -> Path:
        did, trainer, configuration = RUNS[name]
        return dataset_folder(results, did) / f"{trainer}__nnUNetPlans__{configuration}"

    trainings = []
    for name, (did, trainer, configuration) in RUNS.items():
        if name in args.runs and not list(results.glob(
                f"Dataset{did}_*/{trainer}__nnUNetPlans__{configuration}/fold_all/checkpoint_final.pth")):
            trainings.append((f"nnUNetv2_train {did} {configuration} all -tr {trainer} -device {args.device}",
                              f"train_{name}"))
    t0 = time.time()
    if args.parallel and trainings:
        # one thread per training (the runner waits for its command); no progress bars, they would interleave
        with ThreadPoolExecutor(len(trainings)) as pool:
            for future in [pool.submit(runner.run, cmd, name) for cmd, name in trainings]:
                future.result()
    else:
        for cmd, name in trainings:
            runner.run(cmd, name, epochs=args.epochs)
    timings["train_wall_s"] = time.time() - t0

    teacher_ts = dataset_folder(raw, TEACHER_ID) / "imagesTs"
    perturbed_ts = out / "imagesTs_perturbed_boxes"
    if not perturbed_ts.is_dir():
        write_perturbed_inputs(teacher_ts, perturbed_ts, args.seed)
    tests = {"box": {"exact boxes": teacher_ts, "perturbed boxes": perturbed_ts},
             "exact": {"exact boxes": teacher_ts, "perturbed boxes": perturbed_ts},
             "ct_only": {"CT only": dataset_folder(raw, CT_ONLY_ID) / "imagesTs"}}
    gt = dataset_folder(raw, TEACHER_ID) / "labelsTs"
    from nnunet_ts.demo.report import cell
    from nnunet_ts.evaluation.folder import evaluate_folders
    from nnunet_ts.inference.restriction_folder import restrict_prediction_folder

    table = {}
    for name, inputs in tests.items():
        if name not in args.runs:
            continue
        did, trainer, configuration = RUNS[name]
        checkpoint = model_folder(name) / "fold_all" / "checkpoint_final.pth"
        for label, folder in inputs.items():
            pred = out / "predictions" / f"{name}__{label.replace(' ', '_')}"
            summary_file = pred / "evaluation_summary.json"
            # redone when missing or older than the network (retrained, e.g. under another trainer name)
            redo = not summary_file.is_file() or summary_file.stat().st_mtime < checkpoint.stat().st_mtime
            if redo:
                shutil.rmtree(pred, ignore_errors=True)
                runner.run(f"nnUNetv2_predict -i {quoted(folder)} -o {quoted(pred)} -d {did} -c {configuration} "
                           f"-f all -tr {trainer} -device {args.device} -chk checkpoint_final.pth --disable_tta "
                           f"-step_size {args.step_size} -npp {args.np} -nps {args.np}", f"predict_{pred.name}")
                evaluate_folders(pred, gt, pred, overwrite=True, progress=False)
            runs = [(label, pred)]
            if name != "ct_only":  # the optional inference-time restriction to the box + margin
                restricted = pred.with_name(pred.name + f"__in_box_{RESTRICT_MARGIN_MM:g}mm")
                if redo or not (restricted / "evaluation_summary.json").is_file():
                    restrict_prediction_folder(pred, folder, restricted, margin_mm=RESTRICT_MARGIN_MM,
                                               overwrite=True, progress=False)
                    evaluate_folders(restricted, gt, restricted, overwrite=True, progress=False)
                runs.append((f"{label}, restricted to box + {RESTRICT_MARGIN_MM:g} mm", restricted))
            for run_label, folder_done in runs:
                summary = json.loads((folder_done / "evaluation_summary.json").read_text())
                table[(name, run_label)] = {m: summary["metrics"][m] for m in ("dsc", "dsc_tp", "f1")}

    titles = {"box": "box-guided teacher, trained with perturbed boxes",
              "exact": "box-guided teacher, trained with exact boxes",
              "ct_only": "CT-only network (paper: point guided)"}
    lines = [f"Teacher experiment: {args.n_strong} strong training cases, {args.n_test} test cases, "
             f"scale {args.scale} ({source}), budget {args.epochs} x {args.iterations} iterations, "
             f"seed {args.seed}, training seed {args.train_seed}, "
             f"sliding-window step {args.step_size:g}.", "",
             "| network | test input | DSC % (mean ± std) | DSC-TP % | lesion F1 % |",
             "|---|---|---|---|---|"]
    for (name, label), m in table.items():
        lines.append(f"| {titles[name]} | {label} | {cell(m['dsc'])} | {cell(m['dsc_tp'])} | {cell(m['f1'])} |")
    (out / "teacher_table.md").write_text("\n".join(lines) + "\n")
    (out / "teacher_results.json").write_text(json.dumps(
        {"args": {k: str(v) for k, v in vars(args).items()}, "timings_s": timings,
         "results": {f"{name} | {label}": m for (name, label), m in table.items()}}, indent=2))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
