"""``nnunet_ts budget-config``: add a configuration that fixes the training budget to a dataset's plans."""
from __future__ import annotations

import argparse
from pathlib import Path

from nnunet_ts.cli.formatting import HelpFormatter
from nnunet_ts.cli.validators import dataset_id, positive_int


def run(args: argparse.Namespace) -> int:
    from nnunet_ts.errors import InputError
    from nnunet_ts.nnunet.paths import env_root, folders_with_id
    from nnunet_ts.planners.budget_config import TrainingBudget, add_budget_configuration

    preprocessed = env_root("nnUNet_preprocessed", args.preprocessed)
    folders = folders_with_id(preprocessed, args.dataset_id)
    if not folders:
        raise InputError(f"no Dataset{args.dataset_id:03d}_* in {preprocessed}; run "
                         f"nnUNetv2_plan_and_preprocess -d {args.dataset_id} -c 3d_fullres first")
    budget = TrainingBudget(args.epochs, args.iterations, args.val_iterations)
    plans_file = folders[0] / f"{args.plans}.json"
    add_budget_configuration(plans_file, args.name, args.source, budget, overwrite=args.overwrite)
    print(f"added configuration {args.name!r} to {plans_file}: inherits {args.source!r}, "
          f"{budget.epochs} epochs x {budget.iterations} iterations")
    return 0


def register(subparsers, name: str, help_text: str) -> None:
    p = subparsers.add_parser(
        name, help=help_text, formatter_class=HelpFormatter,
        description="Add a configuration NAME that inherits everything from SOURCE (network, patch, "
                    "spacing,\npreprocessed data) and fixes the training length. The *PlansBudgetTrainer "
                    "classes read it,\nso networks compared in one experiment train exactly as long.",
        epilog="example:\n  nnunet_ts budget-config -d 501 -c demo_teacher --source 3d_tiny --epochs 20 "
               "--iterations 25\n  nnUNetv2_train 501 demo_teacher all -tr BoxTeacherPlansBudgetTrainer "
               "-device cpu")
    p.add_argument("-d", "--dataset-id", required=True, type=dataset_id, help="nnU-Net dataset id")
    p.add_argument("-c", "--name", required=True, help="name of the configuration to add")
    p.add_argument("--source", default="3d_fullres", help="configuration to inherit from (3d_fullres, 3d_tiny)")
    p.add_argument("--epochs", required=True, type=positive_int, help="training epochs")
    p.add_argument("--iterations", required=True, type=positive_int, help="training iterations per epoch")
    p.add_argument("--val-iterations", type=positive_int, default=2, help="validation iterations per epoch")
    p.add_argument("-p", "--plans", default="nnUNetPlans", help="plans identifier (file name without .json)")
    p.add_argument("--preprocessed", type=Path, default=None, help="default: $nnUNet_preprocessed")
    p.add_argument("--overwrite", action="store_true", help="replace a different configuration of that name")
    p.set_defaults(func=run)
