"""The teacher experiment (paper Tables 2-3): box-guided teacher vs the CT-only network.

Same synthetic strong cases, same plans, same budget; three trainings:

  box      BoxTeacherTrainer-like, trained with perturbed boxes in half of the samples
  exact    the same teacher trained on exact boxes only
  ct_only  nnU-Net's default trainer on the CT channel alone (the paper's "point guided")

Each box teacher is tested on the held-out cases with the exact boxes and with perturbed boxes
(Sun et al.: scale 0.9-1.2, edges moved by < 1/10 of the side, one fixed draw per case). Writes
``teacher_table.md`` and ``teacher_results.json`` into OUT. Every step runs the stock commands (printed
as they run) and is skipped when its output exists, so a rerun resumes.

    python scripts/teacher_experiment.py OUT --scale gpu --device cuda      # real 3d_fullres plans
    python scripts/teacher_experiment.py OUT --scale cpu --device cpu       # 3d_tiny, a 2-core CPU
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
TEACHER_ID, CT_ONLY_ID = 611, 612
RUNS = {  # name: (dataset id, trainer), in training order (the main comparison first)
    "box": (TEACHER_ID, "TeacherExpBoxTrainer"),
    "ct_only": (CT_ONLY_ID, "TeacherExpCTOnlyTrainer"),
    "exact": (TEACHER_ID, "TeacherExpExactBoxTrainer"),
}
CONFIG = "exp"
RESTRICT_MARGIN_MM = 5.0


def sh(cmd: str, env: dict, log: Path | None = None) -> None:
    print(f"$ {cmd}", flush=True)
    if log is None:
        subprocess.run(["bash", "-c", cmd], env=env, check=True)
    else:
        with log.open("w") as f:
            subprocess.run(["bash", "-c", cmd], env=env, check=True, stdout=f, stderr=subprocess.STDOUT)


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
    args = ap.parse_args()

    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    from nnunet_ts.planners.budget_config import TrainingBudget, add_budget_configuration
    from nnunet_ts.nnunet.stock_commands import TRAINING_ONLY, nnunet_environment

    # nnU-Net's folders under OUT, our trainers and the experiment's found, CPU-friendly worker counts
    env = nnunet_environment(out, args.device, args.np, extra_trainer_dirs=[HERE / "experiment_trainers"])
    timings: dict[str, float] = {}

    cases = out / "cases"
    if not (cases / "cases.csv").is_file():
        shape = f"--shape {' '.join(map(str, args.shape))}" if args.shape else ""
        sh(f"nnunet_ts synth {cases} --n-strong {args.n_strong} --n-weak 0 --n-test {args.n_test} "
           f"--seed {args.seed} {shape}", env)
    raw = out / "nnUNet_raw"
    for kind, did, name in (("teacher", TEACHER_ID, "TeacherExp"), ("student", CT_ONLY_ID, "CTOnlyExp")):
        if not list(raw.glob(f"Dataset{did}_*")):
            sh(f"nnunet_ts dataset {kind} --cases {cases} -d {did} -n {name} --workers {args.np}", env)
    pre = out / "nnUNet_preprocessed"
    source = "3d_fullres" if args.scale == "gpu" else "3d_tiny"
    budget = TrainingBudget(args.epochs, args.iterations, 5)
    for did, plan_cmd in ((TEACHER_ID, f"nnunet_ts plan-teacher -d {TEACHER_ID} -np {args.np}"),
                          (CT_ONLY_ID, f"nnUNetv2_plan_and_preprocess -d {CT_ONLY_ID} -c 3d_fullres "
                                       f"-np {args.np} --verify_dataset_integrity")):
        plans_file = next(iter(pre.glob(f"Dataset{did}_*/nnUNetPlans.json")), None)
        if plans_file is None or CONFIG not in json.loads(plans_file.read_text())["configurations"]:
            t0 = time.time()
            if plans_file is None:
                # nnU-Net 2.8.1's planner fails with nnUNet_n_proc_DA=0 (a CPU training setting)
                sh(plan_cmd, {k: v for k, v in env.items() if k not in TRAINING_ONLY})
            if args.scale == "cpu":
                sh(f"nnunet_ts tiny-plans -d {did} --overwrite", env)
            plans_file = next(iter(pre.glob(f"Dataset{did}_*/nnUNetPlans.json")))
            add_budget_configuration(plans_file, CONFIG, source, budget, overwrite=True)
            timings[f"plan_{did}"] = time.time() - t0

    results = out / "nnUNet_results"
    procs = []
    t0 = time.time()
    for name, (did, trainer) in RUNS.items():
        if name not in args.runs:
            continue
        final = list(results.glob(f"Dataset{did}_*/{trainer}__nnUNetPlans__{CONFIG}/fold_all/checkpoint_final.pth"))
        if final:
            continue
        cmd = f"nnUNetv2_train {did} {CONFIG} all -tr {trainer} -device {args.device}"
        log = out / f"train_{name}.log"
        if args.parallel:
            print(f"$ {cmd} > {log} &", flush=True)
            procs.append((name, subprocess.Popen(["bash", "-c", cmd], env=env, stdout=log.open("w"),
                                                 stderr=subprocess.STDOUT)))
        else:
            sh(cmd, env, log)
    for name, p in procs:
        if p.wait() != 0:
            raise SystemExit(f"training {name} failed; see {out / f'train_{name}.log'}")
    timings["train_wall_s"] = time.time() - t0

    teacher_ts = next(raw.glob(f"Dataset{TEACHER_ID}_*")) / "imagesTs"
    perturbed_ts = out / "imagesTs_perturbed_boxes"
    if not perturbed_ts.is_dir():
        write_perturbed_inputs(teacher_ts, perturbed_ts, args.seed)
    tests = {"box": {"exact boxes": teacher_ts, "perturbed boxes": perturbed_ts},
             "exact": {"exact boxes": teacher_ts, "perturbed boxes": perturbed_ts},
             "ct_only": {"CT only": next(raw.glob(f"Dataset{CT_ONLY_ID}_*")) / "imagesTs"}}
    gt = next(raw.glob(f"Dataset{TEACHER_ID}_*")) / "labelsTs"
    from nnunet_ts.evaluation.folder import evaluate_folders

    from nnunet_ts.boxes.restriction_folder import restrict_prediction_folder

    table = {}
    for name, inputs in tests.items():
        if name not in args.runs:
            continue
        did, trainer = RUNS[name]
        for label, folder in inputs.items():
            pred = out / "predictions" / f"{name}__{label.replace(' ', '_')}"
            if not (pred / "evaluation_summary.json").is_file():
                shutil.rmtree(pred, ignore_errors=True)
                sh(f"nnUNetv2_predict -i {folder} -o {pred} -d {did} -c {CONFIG} -f all -tr {trainer} "
                   f"-device {args.device} -chk checkpoint_final.pth --disable_tta -step_size {args.step_size} "
                   f"-npp {args.np} -nps {args.np}", env)
                evaluate_folders(pred, gt, pred, overwrite=True, progress=False)
            runs = [(label, pred)]
            if name != "ct_only":  # the optional inference-time restriction to the box + margin
                restricted = pred.with_name(pred.name + f"__in_box_{RESTRICT_MARGIN_MM:g}mm")
                if not (restricted / "evaluation_summary.json").is_file():
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
             f"seed {args.seed}, sliding-window step {args.step_size:g}.", "",
             "| network | test input | DSC % (mean ± std) | DSC-TP % | lesion F1 % |",
             "|---|---|---|---|---|"]

    def cell(s):
        return "-" if s["n"] == 0 else f"{100 * s['mean']:.1f} ± {100 * s['std']:.1f}"

    for (name, label), m in table.items():
        lines.append(f"| {titles[name]} | {label} | {cell(m['dsc'])} | {cell(m['dsc_tp'])} | {cell(m['f1'])} |")
    (out / "teacher_table.md").write_text("\n".join(lines) + "\n")
    (out / "teacher_results.json").write_text(json.dumps(
        {"args": {k: str(v) for k, v in vars(args).items()}, "timings_s": timings,
         "results": {f"{n} | {l}": m for (n, l), m in table.items()}}, indent=2))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
