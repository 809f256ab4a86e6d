"""``nnunet_ts demo``: the paper's experiment end to end, through the stock commands, with a report."""
from __future__ import annotations

import argparse
from pathlib import Path

from nnunet_ts.cli.formatting import HelpFormatter
from nnunet_ts.cli.validators import integer, positive_int

DESCRIPTION = """\
Run the paper's experiment end to end and write a report:

  1. synthetic thorax CTs, split by patient into strong (voxel masks), weak (boxes only) and
     held-out cases; the held-out patients split into a validation and a test set
  2. one crop per lung of every case (the paper's input; --no-lung-crops: whole scans)
  3. nnU-Net datasets: teacher (CT + segbox), student (CT), weak (CT + drawn boxes)
  4. one plan: stock planning of the strong cases, moved to the students' dataset; a budget
     configuration per network and training seed
  5. the box-guided teacher and the unguided CT-only teacher, trained on the strong cases
  6. pseudo-labels: the box teacher's soft outputs on the weak cases -> student dataset
  7. baseline (nnU-Net on strong only), SO student and DO student (dual decoder), each once per
     training seed (--train-seeds)
  8. every network predicts the held-out cases (crops pasted back onto the whole CT); evaluated with
     and without keeping the largest connected component (LCC)
  9. OUT/report/: report.md (test set: tables shaped as the paper's Tables 2-5, each student vs the
     baseline with a bootstrap 95 % CI; validation set apart), bar_chart.png, panels/*.png

Every step is a stock command (nnUNetv2_* or nnunet_ts ...) and is printed as it runs: after
`eval "$(nnunet_ts env --root OUT/nnunet)"` each line redoes that step alone. Command output goes to
OUT/logs/. A finished step is skipped when the demo is rerun, so an interrupted demo continues where
it stopped (an interrupted training continues from its latest checkpoint, written every quarter of
its budget); --overwrite starts afresh.

Scenarios: scarce (few strong, many weak: the setting where the students should win) and vast
(similar sizes). Scales: cpu (3d_tiny network, short budgets, for a 2-core CPU) and gpu
(nnU-Net's 3d_fullres plans, 300 x 250 iterations per network, larger cohorts)."""

EPILOG = """\
examples:
  nnunet_ts demo                                  # scarce scenario, cpu scale, into demo_output/scarce-cpu
  nnunet_ts demo --scenario vast --scale cpu
  nnunet_ts demo --scale gpu --device cuda --out /data/demo
  nnunet_ts demo --train-seeds 3 --student-epochs 160       # repeats of baseline, SO and DO (make benchmark)
  nnunet_ts demo --cases $nnUNet_raw/cohorts/msd/cases.csv --scale gpu --device cuda   # a real cohort"""


def register(subparsers, name: str, help_text: str) -> None:
    from nnunet_ts.demo.config import SCALES, SCENARIOS

    p = subparsers.add_parser(name, help=help_text, description=DESCRIPTION, epilog=EPILOG,
                              formatter_class=HelpFormatter)
    p.add_argument("--scenario", choices=SCENARIOS, default="scarce",
                   help="cohort sizes: scarce (few strong, many weak) or vast (similar sizes)")
    p.add_argument("--scale", choices=SCALES, default="cpu",
                   help="cpu: 3d_tiny and short budgets (a 2-core CPU); gpu: 3d_fullres, long budgets")
    p.add_argument("--out", type=Path, default=None, metavar="DIR",
                   help="output folder (default: demo_output/<scenario>-<scale>); rerun to resume")
    p.add_argument("--overwrite", action="store_true",
                   help="delete an earlier run in --out and start afresh (default: resume it)")
    p.add_argument("-device", "--device", choices=("cpu", "cuda"), default=None,
                   help="where networks train and predict (default: cpu for --scale cpu, cuda for gpu)")
    p.add_argument("--cases", type=Path, default=None, metavar="CSV",
                   help="a case manifest (cases.csv with strong/weak/test subsets, e.g. from "
                        "`nnunet_ts convert`) instead of the synthetic cohort")
    p.add_argument("--seed", type=integer(0), default=0, help="seed of the synthetic cohort")
    p.add_argument("--epochs", type=positive_int, default=None, help="override every network's epochs")
    p.add_argument("--student-epochs", type=positive_int, default=None, metavar="N",
                   help="override the epochs of baseline, SO and DO alone (one budget for the three); the "
                        "teachers keep theirs (or --epochs)")
    p.add_argument("--iterations", type=positive_int, default=None,
                   help="override every network's training iterations per epoch")
    p.add_argument("--n-strong", type=positive_int, default=None, help="override the scenario's strong cases")
    p.add_argument("--n-weak", type=positive_int, default=None, help="override the scenario's weak cases")
    p.add_argument("--n-test", type=positive_int, default=None, help="override the scenario's test cases")
    p.add_argument("--n-validation", type=integer(0), default=None,
                   help="override the scenario's validation cases (held out like the test cases, for design "
                        "choices)")
    p.add_argument("--train-seeds", type=positive_int, default=1, metavar="N",
                   help="train baseline, SO and DO N times (training seeds 0..N-1); the report averages each "
                        "case over the seeds")
    p.add_argument("--lung-crops", action=argparse.BooleanOptionalAction, default=True,
                   help="train and predict on one crop per lung, scored on the whole CT (the paper's input)")
    p.add_argument("--workers", type=positive_int, default=None,
                   help="processes for synthesis, preprocessing and prediction (default: the preset's)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from nnunet_ts.demo.config import Cohort, preset
    from nnunet_ts.demo.pipeline import Demo, run_demo, summary_lines
    from nnunet_ts.errors import InputError

    config = preset(args.scenario, args.scale).with_budget(args.epochs, args.iterations, args.student_epochs)
    try:
        cohort = Cohort(args.n_strong or config.cohort.n_strong, args.n_weak or config.cohort.n_weak,
                        args.n_test or config.cohort.n_test,
                        config.cohort.n_validation if args.n_validation is None else args.n_validation)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    config = replace(config, cohort=cohort, seed=args.seed, train_seeds=args.train_seeds,
                     lung_crops=args.lung_crops, num_processes=args.workers or config.num_processes)
    out = args.out or Path("demo_output") / f"{args.scenario}-{args.scale}"
    device = args.device or ("cpu" if args.scale == "cpu" else "cuda")
    if args.cases is not None and not args.cases.exists():
        raise InputError(f"--cases {args.cases} does not exist; give a cases.csv (see README, "
                         f"'Inputs: the case manifest')")
    demo = Demo(config, out, device=device, cases=args.cases)
    seconds = run_demo(demo, overwrite=args.overwrite)
    print("\n".join(summary_lines(demo, seconds)))
    return 0
