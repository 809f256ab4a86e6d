"""Pseudo-labelling cost: ROI mode vs nnU-Net's whole-volume prediction, with the same teacher.

Builds a box teacher (compact synthetic cases, planned at 1.5 x 1.0 x 1.0 mm like a clinical
teacher, tiny CPU configuration, a short training), then pseudo-labels clinical-size synthetic CTs
(default 200 x 512 x 512 voxels, 0.6-1.0 mm in-plane, tumours 10-60 mm), side by side, each command
once over all cases as the pseudo-label step runs (``--per-case-commands``: once per case):

  roi    nnunet_ts pseudolabel --mode roi (each box + 20 mm predicted from a crop with half a patch of
         context), which also checks its inputs and writes the student dataset
  full   nnUNetv2_predict on the whole volumes (--save_probabilities), the stock command

and prints seconds, the full/ROI time ratio and the peak resident memory of each command (the
largest single process: nnUNetv2_predict preprocesses and exports in worker processes, the ROI
command does all in one), then per case the Dice of the two thresholded (0.5) maps inside the ROI
regions (boxes + 20 mm), where the ROI map is written: over all regions of the case and per region;
1 where both are empty there. Targets: >= 10x, Dice >= 0.99 per region. Both commands run in the
CPU precision of the environment (``NNUNET_TS_PRECISION``; default: the teacher's configuration).

The teacher is ``BoxTeacherTrainer`` on configuration ``bench_teacher``: ``3d_tiny`` trained
``--epochs`` x 20 iterations (default 100 x 20), without mirroring and without nnU-Net's final
validation (on clinical-spacing plans it predicts whole validation volumes and would cost more than
the benchmark). Timing does not depend on training, agreement does: an untrained teacher's
probabilities hover around 0.5, where the different tile placement of ROI and whole-volume
prediction flips the threshold.

The set-up commands run through ``CommandRunner`` (printed on stderr, output in OUT/logs/); the two
compared commands run under this script's own wait, which reads each one's peak memory (``wait4``),
their output appended to OUT/bench.log.

Run time: about 30 minutes on 2 cores with the defaults (estimate; the whole-volume predictions are most
of it).

    python scripts/benchmarks/pseudolabel.py OUT [--cases 3] [--shape 200 512 512] [--epochs 100] [--device cpu]
        [--per-case-commands]
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

BIN = Path(sys.executable).parent
TEACHER_ID, STRONG_ID, WEAK_ID, SPACING_ID = 801, 802, 803, 804
CONFIG, SOURCE = "bench_teacher", "3d_tiny"
ITERATIONS, VAL_ITERATIONS = 20, 2  # per teacher epoch (--epochs)


def measured(cmd: list[str], env: dict, log: Path) -> tuple[float, float]:
    """(seconds, peak RSS in GiB) of one compared command; its output is appended to ``log``."""
    t0 = time.perf_counter()
    with log.open("a") as f:
        f.write("$ " + " ".join(cmd) + "\n")
        f.flush()
        p = subprocess.Popen(cmd, env=env, stdout=f, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(p.pid, 0)  # the tree's largest process (waited-for descendants included)
    if status != 0:
        raise SystemExit(f"failed: {' '.join(cmd)} (see {log})")
    return time.perf_counter() - t0, usage.ru_maxrss / 2**20


def _thresholded_dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice of the two maps thresholded at 0.5; 1 where both are empty."""
    a, b = a >= 0.5, b >= 0.5
    return 1.0 if a.sum() + b.sum() == 0 else float(2 * (a & b).sum() / (a.sum() + b.sum()))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path)
    ap.add_argument("--cases", type=int, default=3)
    ap.add_argument("--shape", type=int, nargs=3, default=[200, 512, 512], metavar=("Z", "Y", "X"))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--trainer", default="BoxTeacherTrainer",
                    help=f"teacher trainer, trained on configuration {CONFIG}")
    ap.add_argument("--epochs", type=int, default=100,
                    help=f"teacher epochs of {ITERATIONS} iterations: the timing does not depend on how well it is "
                         "trained, the agreement does (near 0.5 everywhere, an untrained teacher's maps flip at "
                         "the threshold wherever the tiles fall differently)")
    ap.add_argument("--per-case-commands", action="store_true",
                    help="run each compared command once per case (start-up paid per case) instead of once over "
                         "all cases, as the pseudo-label step runs")
    args = ap.parse_args()
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    from nnunet_ts.nnunet.stock_commands import TRAINING_ONLY, CommandRunner, dataset_folder, nnunet_environment, quoted
    from nnunet_ts.planners.plans_file import has_configuration, resolved_configuration

    log = out / "bench.log"
    env = nnunet_environment(out, args.device, num_processes=2)
    env["nnUNet_n_proc_DA"] = "0"  # the teacher's augmentation in its training process (nnUNetv2_train only)
    compared_env = {k: v for k, v in env.items() if k not in TRAINING_ONLY}
    runner = CommandRunner(env, out / "logs", echo=lambda line: print(line, file=sys.stderr, flush=True))
    nt = str(BIN / "nnunet_ts")

    if not (out / "teacher_cases" / "cases.csv").is_file():
        runner.run(f"nnunet_ts synth {quoted(out / 'teacher_cases')} --n-strong 8 --n-weak 0 --n-test 0",
                   "synth_teacher_cases")
    if not (out / "weak_cases" / "cases.csv").is_file():
        runner.run(f"nnunet_ts synth {quoted(out / 'weak_cases')} --n-strong 0 --n-weak {args.cases} --n-test 0 "
                   f"--preset clinical --shape {' '.join(map(str, args.shape))} --seed 7", "synth_weak_cases")
    raw = out / "nnUNet_raw"
    for kind, did, cases in (("teacher", TEACHER_ID, "teacher_cases"), ("student", STRONG_ID, "teacher_cases"),
                             ("weak", WEAK_ID, "weak_cases")):
        if not list(raw.glob(f"Dataset{did}_*")):
            runner.run(f"nnunet_ts dataset {kind} --cases {quoted(out / cases)} -d {did} -n Bench{kind}"
                       + (" --allow-empty-boxes" if kind == "weak" else ""), f"dataset_{kind}")
    pre = out / "nnUNet_preprocessed"
    if not list(pre.glob(f"Dataset{TEACHER_ID}_*/nnUNetPlans.json")):
        donor = pre / f"Dataset{SPACING_ID}_Spacing"
        donor.mkdir(parents=True, exist_ok=True)
        (donor / "nnUNetPlans.json").write_text(json.dumps({
            "dataset_name": donor.name, "plans_name": "nnUNetPlans",
            "configurations": {"3d_fullres": {"spacing": [1.5, 1.0, 1.0]}}}))
        runner.run(f"nnunet_ts plan-teacher -d {TEACHER_ID} --spacing-from {SPACING_ID} -np 2", "plan_teacher")
        runner.run(f"nnunet_ts tiny-plans -d {TEACHER_ID}", "tiny_plans")
    if not has_configuration(dataset_folder(pre, TEACHER_ID) / "nnUNetPlans.json", CONFIG):
        runner.run(f"nnunet_ts budget-config -d {TEACHER_ID} -c {CONFIG} --source {SOURCE} --epochs {args.epochs} "
                   f"--iterations {ITERATIONS} --val-iterations {VAL_ITERATIONS} --no-mirroring "
                   f"--final-validation never --seed 0", "teacher_configuration")
    model = next(iter((out / "nnUNet_results").glob(f"Dataset{TEACHER_ID}_*")), None)
    model = model / f"{args.trainer}__nnUNetPlans__{CONFIG}" if model else None
    if model is None or not (model / "fold_0" / "checkpoint_final.pth").is_file():
        runner.run(f"nnUNetv2_train {TEACHER_ID} {CONFIG} 0 -tr {args.trainer} -device {args.device}",
                   "train_teacher", epochs=args.epochs)
        model = dataset_folder(out / "nnUNet_results", TEACHER_ID) / f"{args.trainer}__nnUNetPlans__{CONFIG}"

    from nnunet_ts.io.images import read_image
    from nnunet_ts.pseudolabel.roi import box_regions

    weak_images = next(raw.glob(f"Dataset{WEAK_ID}_*")) / "imagesTs"
    cases = sorted(p.name[:-len("_0000.nii.gz")] for p in weak_images.glob("*_0000.nii.gz"))[:args.cases]
    configuration = resolved_configuration(json.loads((model / "plans.json").read_text()), CONFIG)
    patch_mm = tuple(p * s for p, s in zip(configuration["patch_size"], configuration["spacing"], strict=True))
    print(f"teacher {model.name}, patch {patch_mm} mm; {len(cases)} weak CTs of {args.shape} voxels, "
          f"CPU precision {os.environ.get('NNUNET_TS_PRECISION') or 'the configuration default'}", flush=True)
    groups = [[c] for c in cases] if args.per_case_commands else [cases]
    rows, agreement = [], []
    for i, group in enumerate(groups):
        name = group[0] if args.per_case_commands else "all"
        single = out / "single" / name
        shutil.rmtree(single, ignore_errors=True)
        (single / "imagesTs").mkdir(parents=True)
        for source in group:
            case = f"weak_{source}"  # the synthetic strong cases have the same names
            for ch in ("0000", "0001"):
                os.symlink(weak_images / f"{source}_{ch}.nii.gz", single / "imagesTs" / f"{case}_{ch}.nii.gz")
        (single / "dataset.json").write_text((weak_images.parent / "dataset.json").read_text())
        roi_id = 850 + i
        shutil.rmtree(raw / f"Dataset{roi_id}_BenchROI", ignore_errors=True)
        roi_s, roi_gib = measured([nt, "pseudolabel", "--teacher", str(model), "--weak", str(single), "--strong",
                                   str(STRONG_ID), "-d", str(roi_id), "-n", "BenchROI", "--device", args.device,
                                   "--allow-empty-boxes", "--overwrite"], compared_env, log)
        full_dir = out / "full" / name
        shutil.rmtree(full_dir, ignore_errors=True)
        full_s, full_gib = measured([str(BIN / "nnUNetv2_predict"), "-i", str(single / "imagesTs"), "-o",
                                     str(full_dir), "-d", str(TEACHER_ID), "-c", CONFIG, "-f", "0", "-tr", args.trainer,
                                     "-device", args.device, "--save_probabilities", "-npp", "1", "-nps", "1"],
                                    compared_env, log)
        rows.append((name, len(group), roi_s, full_s, roi_gib, full_gib))
        for source in group:
            case = f"weak_{source}"
            roi_map, geometry = read_image(raw / f"Dataset{roi_id}_BenchROI" / "softTargetsTr" / f"{case}.nii.gz")
            full_map = np.load(full_dir / f"{case}.npz")["probabilities"][1]
            segbox, _ = read_image(weak_images / f"{source}_0001.nii.gz")
            inside = np.zeros(segbox.shape, bool)
            regions = box_regions(segbox, geometry.spacing_zyx, 20.0)
            for region in regions:
                inside[region] = True
            per_roi = [_thresholded_dice(roi_map[r], full_map[r]) for r in regions]
            agreement.append((case, _thresholded_dice(roi_map[inside], full_map[inside]), per_roi,
                              int((full_map[inside] >= 0.5).sum())))

    print("\n| command(s) | cases | ROI s | full s | full / ROI | ROI peak GiB | full peak GiB |")
    print("|---|---|---|---|---|---|---|")
    for name, n, roi_s, full_s, roi_gib, full_gib in rows:
        print(f"| {name} | {n} | {roi_s:.1f} | {full_s:.1f} | {full_s / roi_s:.1f}x | {roi_gib:.2f} | {full_gib:.2f} |")
    r = np.array([row[2:] for row in rows])
    if len(rows) > 1:
        print(f"| all | {len(cases)} | {r[:, 0].sum():.1f} | {r[:, 1].sum():.1f} | "
              f"{r[:, 1].sum() / r[:, 0].sum():.1f}x | {r[:, 2].max():.2f} | {r[:, 3].max():.2f} |")
    print("\n| case | Dice in the ROIs | Dice per ROI | full-map voxels >= 0.5 in the ROIs |")
    print("|---|---|---|---|")
    for case, dice, per_roi, voxels in agreement:
        print(f"| {case} | {dice:.4f} | {', '.join(f'{d:.4f}' for d in per_roi)} | {voxels} |")
    lowest = min((d for *_, per_roi, _ in agreement for d in per_roi), default=1.0)
    ratio = r[:, 1].sum() / r[:, 0].sum()
    print(f"\ntargets: full / ROI {ratio:.1f}x (>= 10x: {'met' if ratio >= 10 else 'NOT met'}), lowest Dice per ROI "
          f"{lowest:.4f} (>= 0.99: {'met' if lowest >= 0.99 else 'NOT met'})")
    print("Each command starts once per " + ("case" if args.per_case_commands else "run, over all cases")
          + " (imports, loading the model); the ROI command also checks its inputs and writes the student dataset"
          " (strong cases copied in). Peak memory is the largest single process of each command's tree.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
