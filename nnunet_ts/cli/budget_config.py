"""``nnunet_ts budget-config``: add a configuration with training settings (budget, Dice smooth ...) to plans."""
from __future__ import annotations

import argparse
from pathlib import Path

from nnunet_ts.cli.formatting import HelpFormatter
from nnunet_ts.cli.settings_options import add_settings_arguments, settings_from_args
from nnunet_ts.cli.validators import dataset_id


def run(args: argparse.Namespace) -> int:
    from nnunet_ts.errors import InputError
    from nnunet_ts.nnunet.paths import env_root, folders_with_id
    from nnunet_ts.planners.training_settings import add_training_configuration

    preprocessed = env_root("nnUNet_preprocessed", args.preprocessed)
    folders = folders_with_id(preprocessed, args.dataset_id)
    if not folders:
        raise InputError(f"no Dataset{args.dataset_id:03d}_* in {preprocessed}; run "
                         f"nnUNetv2_plan_and_preprocess -d {args.dataset_id} -c 3d_fullres first")
    settings = settings_from_args(args)
    plans_file = folders[0] / f"{args.plans}.json"
    add_training_configuration(plans_file, args.name, args.source, settings, overwrite=args.overwrite)
    print(f"added configuration {args.name!r} to {plans_file}: inherits {args.source!r}, {settings}")
    return 0


def register(subparsers, name: str, help_text: str) -> None:
    p = subparsers.add_parser(
        name, help=help_text, formatter_class=HelpFormatter,
        description="Add a configuration NAME that inherits everything from SOURCE (network, patch, "
                    "spacing,\npreprocessed data) and records training settings: the budget, the Dice "
                    "smooth, mirroring\nand the final validation. Every nnunet_ts trainer reads them, so "
                    "networks compared in one\nexperiment train on exactly the same terms.",
        epilog="example:\n  nnunet_ts budget-config -d 501 -c demo_teacher --source 3d_tiny --epochs 20 "
               "--iterations 25\n  nnUNetv2_train 501 demo_teacher all -tr BoxTeacherTrainer -device cpu")
    p.add_argument("-d", "--dataset-id", required=True, type=dataset_id, help="nnU-Net dataset id")
    p.add_argument("-c", "--name", required=True, help="name of the configuration to add")
    p.add_argument("--source", default="3d_fullres", help="configuration to inherit from (3d_fullres, 3d_tiny)")
    add_settings_arguments(p, budget_required=True, mirroring_default=False,
                           final_validation_default="except_fold_all")
    p.add_argument("-p", "--plans", default="nnUNetPlans", help="plans identifier (file name without .json)")
    p.add_argument("--preprocessed", type=Path, default=None, help="default: $nnUNet_preprocessed")
    p.add_argument("--overwrite", action="store_true", help="replace a different configuration of that name")
    p.set_defaults(func=run)
