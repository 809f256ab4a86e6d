"""``nnunet_ts soft-targets``: preprocess a student dataset's soft targets next to nnU-Net's data."""
from __future__ import annotations

import argparse
from pathlib import Path

from nnunet_ts.cli.formatting import HelpFormatter
from nnunet_ts.cli.validators import dataset_id


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from nnunet_ts.errors import InputError
    from nnunet_ts.nnunet.paths import env_root, folders_with_id
    from nnunet_ts.student.soft_targets import preprocess_dataset_soft_targets

    raw = env_root("nnUNet_raw", args.raw)
    preprocessed = env_root("nnUNet_preprocessed", args.preprocessed)
    raw_found, pre_found = folders_with_id(raw, args.dataset_id), folders_with_id(preprocessed, args.dataset_id)
    if not raw_found:
        raise InputError(f"no Dataset{args.dataset_id:03d}_* in {raw}; write the student dataset first")
    if not pre_found:
        raise InputError(f"no Dataset{args.dataset_id:03d}_* in {preprocessed}; run "
                         f"nnUNetv2_plan_and_preprocess -d {args.dataset_id} -c {args.configurations[0]} first")
    for configuration in args.configurations:
        with tqdm(desc=f"soft targets {configuration}", unit="case") as bar:
            folder, made = preprocess_dataset_soft_targets(
                pre_found[0], raw_found[0], configuration, args.plans, overwrite=args.overwrite,
                progress=lambda done: bar.update(done - bar.n))
        print(f"{configuration}: {len(made)} soft target(s) written to {folder}"
              + ("" if made else " (all up to date)"))
    return 0


def register(subparsers, name: str, help_text: str) -> None:
    p = subparsers.add_parser(
        name, help=help_text, formatter_class=HelpFormatter,
        description="Preprocess the soft targets (teacher probability maps) of a student dataset's pseudo "
                    "cases onto\nnnU-Net's preprocessed grid: the CT's transpose and crop, linear "
                    "resampling to the plans' spacing,\nstored as 8-bit <case>_soft.npy next to nnU-Net's "
                    "data. Run it after nnUNetv2_plan_and_preprocess;\nthe TeacherStudent trainers also "
                    "make missing or stale files when they start.\n"
                    "Needs nnUNet_raw and nnUNet_preprocessed (see `nnunet_ts env --root DIR`).",
        epilog="example:\n  nnUNetv2_plan_and_preprocess -d 502 -c 3d_fullres\n"
               "  nnunet_ts soft-targets -d 502 -c 3d_fullres\n"
               "  nnUNetv2_train 502 3d_fullres 0 -tr TeacherStudentTrainer")
    p.add_argument("-d", "--dataset-id", required=True, type=dataset_id, help="student dataset id")
    p.add_argument("-c", "--configurations", nargs="+", default=["3d_fullres"],
                   help="configurations whose data folders get soft targets (a configuration that "
                        "inherits its data, like 3d_tiny, shares them)")
    p.add_argument("-p", "--plans", default="nnUNetPlans", help="plans identifier")
    p.add_argument("--raw", type=Path, default=None, help="default: $nnUNet_raw")
    p.add_argument("--preprocessed", type=Path, default=None, help="default: $nnUNet_preprocessed")
    p.add_argument("--overwrite", action="store_true", help="make every soft target again")
    p.set_defaults(func=run)
