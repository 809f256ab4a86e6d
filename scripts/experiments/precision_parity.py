"""bf16 vs float32 accuracy: the box-guided teacher and the CT-only baseline, seeded, in both precisions.

Does bf16 on the CPU (``NNUNET_TS_PRECISION``, ``nnunet_ts.nnunet.cpu_precision``) train networks as good as
float32 ones? One synthetic cohort (``teacher_experiment.py --prepare-only``: synthesis, both datasets,
stock planning, ``3d_tiny``), then for each training seed and each precision two trainings on copies of it:

  box       BoxTeacherTrainer, ``--teacher-epochs`` x 25 iterations (the demo's teacher budget: 16)
  ct_only   BaselineTrainer on the CT channel alone, ``--baseline-epochs`` x 25 iterations

each tested on the held-out cases (exact boxes for the teacher) by ``teacher_experiment.py``, which this
script runs once per (network, precision, seed) with ``--train-seed`` and the precision in the environment.
Predictions run in the precision the network trained in. Same seed = same initial weights and, with
augmentation in the training process (``nnUNet_n_proc_DA=0``), the same batches: runs pair by seed.

Writes ``parity_table.md`` and ``parity_results.json`` into OUT: per seed the test DSC of both precisions,
then per precision the mean and the standard deviation over seeds (the run-to-run noise), and the mean
paired difference bf16 - float32 with its 95 % t interval over the seeds. Each run resumes where it stopped (its folder
under OUT/runs/ holds its own results); a finished run is not trained again.

Run time: about 80 minutes for 3 seeds on 2 cores (2026-12-05, with other work on the machine): per
seed about 17 minutes of float32 and 8 of bf16 trainings and tests.

    python scripts/experiments/precision_parity.py OUT [--seeds 0 1 2] [--teacher-epochs 16] [--baseline-epochs 50]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
PRECISIONS = ("fp32", "bf16")
TESTS = {"box": "box | exact boxes", "ct_only": "ct_only | CT only"}
TITLES = {"box": "box-guided teacher (exact boxes)", "ct_only": "CT-only baseline"}


def clone_base(base: Path, run: Path) -> None:
    """The base cohort under ``run``: data files hard-linked, every JSON file (plans, splits) copied."""
    tmp = run.with_name(run.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name in ("cases", "nnUNet_raw", "nnUNet_preprocessed"):
        shutil.copytree(base / name, tmp / name, copy_function=os.link, symlinks=True)
    for f in tmp.rglob("*.json"):  # budget-config rewrites the plans: never through a link into the base
        data = f.read_bytes()
        f.unlink()
        f.write_bytes(data)
    tmp.rename(run)


def summary(values: list[float]) -> str:
    if not values:
        return "–"
    sd = statistics.stdev(values) if len(values) > 1 else float("nan")
    return f"{statistics.mean(values):.1f} ± {sd:.1f}"


def paired_interval(diffs: list[float]) -> tuple[float, float]:
    """95 % Student's t interval of the mean of the per-seed differences (NaN for one seed)."""
    from scipy import stats

    if len(diffs) < 2:
        return float("nan"), float("nan")
    mean, sem = statistics.mean(diffs), statistics.stdev(diffs) / len(diffs) ** 0.5
    half = float(stats.t.ppf(0.975, len(diffs) - 1)) * sem
    return mean - half, mean + half


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="training seeds")
    ap.add_argument("--teacher-epochs", type=int, default=16)
    ap.add_argument("--baseline-epochs", type=int, default=50)
    ap.add_argument("--n-strong", type=int, default=20)
    ap.add_argument("--n-test", type=int, default=20)
    ap.add_argument("--networks", nargs="+", choices=tuple(TESTS), default=list(TESTS))
    args = ap.parse_args()

    out = args.out.resolve()
    experiment = [sys.executable, str(HERE / "teacher_experiment.py")]
    common = ["--scale", "cpu", "--device", "cpu", "--n-strong", str(args.n_strong), "--n-test", str(args.n_test),
              "--step-size", "1.0"]
    base = out / "base"
    subprocess.run([*experiment, str(base), *common, "--prepare-only"], check=True)

    epochs = {"box": args.teacher_epochs, "ct_only": args.baseline_epochs}
    dsc: dict[tuple[str, str, int], float] = {}
    for seed in args.seeds:
        for network in args.networks:
            for precision in PRECISIONS:
                run = out / "runs" / f"{network}_{precision}_seed{seed}"
                results = run / "teacher_results.json"
                if not results.is_file():
                    if not run.is_dir():
                        clone_base(base, run)
                    print(f"== {network}, {precision}, seed {seed}", flush=True)
                    env = {**os.environ, "NNUNET_TS_PRECISION": precision}
                    subprocess.run([*experiment, str(run), *common, "--runs", network, "--epochs",
                                    str(epochs[network]), "--train-seed", str(seed)], env=env, check=True)
                metrics = json.loads(results.read_text())["results"][TESTS[network]]
                dsc[(network, precision, seed)] = 100 * metrics["dsc"]["mean"]

    lines = [f"bf16 vs float32: {args.n_strong} strong training cases, {args.n_test} test cases, 3d_tiny, "
             f"box teacher {args.teacher_epochs} x 25 and baseline {args.baseline_epochs} x 25 iterations, "
             f"training seeds {args.seeds}. Test DSC % (mean over the test cases).", "",
             "| network | seed | float32 | bf16 | bf16 - float32 |", "|---|---|---|---|---|"]
    rows = {}
    for network in args.networks:
        fp32 = [dsc[(network, "fp32", s)] for s in args.seeds]
        bf16 = [dsc[(network, "bf16", s)] for s in args.seeds]
        diffs = [b - f for f, b in zip(fp32, bf16)]
        for s, f, b, d in zip(args.seeds, fp32, bf16, diffs):
            lines.append(f"| {TITLES[network]} | {s} | {f:.1f} | {b:.1f} | {d:+.1f} |")
        low, high = paired_interval(diffs)
        lines.append(f"| {TITLES[network]} | mean ± SD over seeds | {summary(fp32)} | {summary(bf16)} | "
                     f"{statistics.mean(diffs):+.1f}, 95 % CI [{low:+.1f}, {high:+.1f}] |")
        rows[network] = {"fp32": fp32, "bf16": bf16, "bf16_minus_fp32": diffs, "ci95": [low, high]}
    lines += ["", "CI: Student's t interval of the mean paired difference over the seeds (the run-to-run noise of "
              "both precisions is in it; with few seeds it is wide)."]
    (out / "parity_table.md").write_text("\n".join(lines) + "\n")
    (out / "parity_results.json").write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                                         "dsc_percent": rows}, indent=2))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
