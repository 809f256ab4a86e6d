"""Decide a design choice on the validation set: a finished demo's networks retrained with one setting changed.

Settings (``--choice SETTING=VALUE``):

* ``dice_smooth=S``: the Dice's smooth of the baseline and both students, who share one Dice (the demo
  trains with 0, nnU-Net's ``nnUNetTrainerDiceCELoss_noSmooth``; nnU-Net's default is 1e-5). Retrains
  the baseline, SO and DO.
* ``box_decoder=full`` or ``box_decoder=N``: the DO student's box decoder, a copy of the segmentation
  decoder (the paper's; the default, chosen with this script) or N convolutions per stage (1: an iteration
  costs ~1.47x the SO student's in convolution FLOPs against ~1.70x for the copy,
  ``scripts/benchmarks/dual_decoder.py``). The demo's own is read from its DO student's training log.
  Retrains the DO student.

For each training seed of the demo (``--seeds``: a subset), each network the setting touches is trained
again on the demo's own data, plans, budget and seed, the setting being the only change, and scored on
the demo's validation cases as the demo scores its networks; the test cases are neither predicted nor
read. The reference is the demo's own network of the same seed.

The rule, fixed before any result: the changed setting replaces the demo's only if it scores higher on
validation with the paired bootstrap 95 % CI of the per-case difference (averaged over the retrained
networks, each network's seeds averaged first) above 0; otherwise the demo's setting stays.

Writes into OUT (``nnunet_ts.demo.design_choices.ChoiceExperiment``): links to the demo's datasets with
a copy of their plans, the trainings, validation predictions and evaluations, logs, and
``<suffix>_table.md`` / ``<suffix>_results.json`` (suffix ``smooth_1e-05``, ``box_full``, ...). A rerun
resumes: finished steps are skipped, an interrupted training continues from its latest checkpoint.

Run time on 2 CPU cores at the benchmark's 160 x 25 iterations: about 10.5 minutes per baseline or SO
training and 14 per DO training (measured, ``make benchmark``), plus under a minute per validation
prediction. ``dice_smooth`` with 3 seeds: about 1 h 45 min; ``box_decoder=full`` with 3 seeds: about 45 min.

Examples::

    python scripts/experiments/design_choice.py runs/smooth --demo demo_output/scarce-cpu-seeds3-e160 \\
        --choice dice_smooth=1e-5
    python scripts/experiments/design_choice.py runs/box --demo demo_output/scarce-cpu-seeds3-e160 \\
        --choice box_decoder=1

Exit status: 0 done; 1 bad input or a failed step (the message names the file, option or log and the fix);
2 bad arguments.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from nnunet_ts.demo.design_choices import ChoiceExperiment, parse_choice
from nnunet_ts.errors import InputError


def choice_argument(text: str):
    try:
        return parse_choice(text)
    except InputError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path, help="experiment folder (created; a rerun resumes)")
    ap.add_argument("--demo", type=Path, required=True, help="a finished `nnunet_ts demo` output folder")
    ap.add_argument("--choice", type=choice_argument, required=True,
                    help="SETTING=VALUE: dice_smooth=S (S >= 0), box_decoder=full or box_decoder=N (N >= 1)")
    ap.add_argument("--seeds", type=int, nargs="+", help="training seeds of the demo to repeat (default: all)")
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="default: cpu")
    ap.add_argument("--np", type=int, default=max(1, (os.cpu_count() or 2) // 2),
                    help="prediction workers on a GPU (default: half the CPU cores)")
    args = ap.parse_args(argv)
    try:
        ChoiceExperiment(args.out, args.demo, args.device, args.np, args.seeds).run(args.choice)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
