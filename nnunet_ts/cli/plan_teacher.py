"""``nnunet_ts plan-teacher``: nnU-Net planning and preprocessing that keeps the segbox channel binary."""
from __future__ import annotations

import argparse
import os

from nnunet_ts.cli.formatting import HelpFormatter
from nnunet_ts.cli.validators import dataset_id, positive_int


def run(args: argparse.Namespace) -> int:
    from nnunet_ts.datasets.splits_install import install_splits
    from nnunet_ts.errors import InputError
    from nnunet_ts.nnunet.paths import env_root, folders_with_id

    raw = env_root("nnUNet_raw", None)
    preprocessed = env_root("nnUNet_preprocessed", None)
    found = folders_with_id(raw, args.dataset_id)
    if not found:
        raise InputError(f"no Dataset{args.dataset_id:03d}_* in {raw}; write it with "
                         f"`nnunet_ts dataset teacher -d {args.dataset_id} ...` or check the id")
    raw_dataset = found[0]
    plans_file = preprocessed / raw_dataset.name / f"{args.plans}.json"
    if plans_file.exists() and not args.overwrite:
        raise InputError(f"{plans_file} exists; pass --overwrite to plan and preprocess "
                         f"{raw_dataset.name} again (configurations added later, e.g. 3d_tiny, are lost)")
    spacing_from = None
    if args.spacing_from is not None:
        other = folders_with_id(preprocessed, args.spacing_from)
        if not other:
            raise InputError(f"no Dataset{args.spacing_from:03d}_* in {preprocessed}; plan the dataset "
                             f"whose spacing to share first (nnUNetv2_plan_and_preprocess -d "
                             f"{args.spacing_from} -c 3d_fullres)")
        spacing_from = other[0] / f"{args.plans}.json"

    from nnunet_ts.planners.teacher_planner import plan_teacher  # imports nnU-Net (reads its env vars)

    plans = plan_teacher(args.dataset_id, raw_dataset, preprocessed, args.configurations,
                         spacing_from=spacing_from, num_processes=args.num_processes,
                         verify_dataset_integrity=not args.no_verify)
    print(f"planned and preprocessed {raw_dataset.name}: {plans} (segbox channel binary)")
    if (raw_dataset / "splits_final.json").is_file():
        print(f"patient-grouped splits in {install_splits(raw_dataset, preprocessed, overwrite=True)}")
    return 0


def register(subparsers, name: str, help_text: str) -> None:
    p = subparsers.add_parser(
        name, help=help_text, formatter_class=HelpFormatter,
        description="Plan and preprocess a teacher dataset (CT + segbox) with nnU-Net's own "
                    "fingerprinting and planner,\nthen preprocess so that the segbox channel stays "
                    "exactly 0/1 (stock preprocessing resamples it\nwith splines into fractional edges). "
                    "Use it instead of nnUNetv2_plan_and_preprocess for teacher datasets.\n"
                    "Needs nnUNet_raw and nnUNet_preprocessed (see `nnunet_ts env --root DIR`).",
        epilog="examples:\n  nnunet_ts plan-teacher -d 501\n"
               "  nnunet_ts plan-teacher -d 501 --spacing-from 502   # the student dataset's spacing\n"
               "  nnUNetv2_train 501 3d_fullres 0 -tr BoxTeacherTrainer")
    p.add_argument("-d", "--dataset-id", required=True, type=dataset_id, help="teacher dataset id")
    p.add_argument("-c", "--configurations", nargs="+", default=["3d_fullres"],
                   help="configurations to preprocess")
    p.add_argument("--spacing-from", type=dataset_id, default=None, metavar="ID",
                   help="take the 3d_fullres target spacing from this planned dataset (the student's), "
                        "so teacher and student work at one resolution")
    p.add_argument("-p", "--plans", default="nnUNetPlans", help="plans identifier")
    p.add_argument("-np", "--num-processes", type=positive_int, default=min(4, os.cpu_count() or 1),
                   help="worker processes")
    p.add_argument("--no-verify", action="store_true", help="skip nnU-Net's dataset integrity check")
    p.add_argument("--overwrite", action="store_true", help="plan again over existing plans")
    p.set_defaults(func=run)
