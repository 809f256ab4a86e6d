"""``nnunet_ts tiny-plans``: add a tiny CPU-sized configuration to a dataset's nnU-Net plans."""
from __future__ import annotations

import argparse
from pathlib import Path

from nnunet_ts.cli.formatting import HelpFormatter
from nnunet_ts.cli.settings_options import add_settings_arguments, settings_from_args
from nnunet_ts.cli.validators import dataset_id, positive_int


def run(args: argparse.Namespace) -> int:
    from nnunet_ts.datasets.splits_install import install_splits
    from nnunet_ts.errors import InputError
    from nnunet_ts.nnunet.paths import env_root, folders_with_id
    from nnunet_ts.planners.tiny_plans import TinyPlan, add_tiny_configuration

    preprocessed = env_root("nnUNet_preprocessed", args.preprocessed)
    folders = folders_with_id(preprocessed, args.dataset_id)
    if not folders:
        raise InputError(f"no Dataset{args.dataset_id:03d}_* in {preprocessed}; run "
                         f"nnUNetv2_plan_and_preprocess -d {args.dataset_id} -c {args.source} first")
    try:
        plan = TinyPlan(name=args.name, source=args.source, patch_size=tuple(args.patch),
                        features_per_stage=tuple(args.features), batch_size=args.batch_size,
                        settings=settings_from_args(args))
    except ValueError as exc:
        raise InputError(str(exc)) from None
    config = add_tiny_configuration(folders[0] / f"{args.plans}.json", plan, overwrite=args.overwrite)
    kwargs = config["architecture"]["arch_kwargs"]
    print(f"added configuration {plan.name!r} to {folders[0] / (args.plans + '.json')}: patch "
          f"{config['patch_size']}, batch {config['batch_size']}, features {kwargs['features_per_stage']}, "
          f"strides {kwargs['strides']}")
    raw = env_root("nnUNet_raw", args.raw, required=False)
    raw_dataset = raw / folders[0].name if raw is not None else None
    if raw_dataset is not None and (raw_dataset / "splits_final.json").is_file():
        print(f"patient-grouped splits in {install_splits(raw_dataset, preprocessed, overwrite=True)}")
    return 0


def register(subparsers, name: str, help_text: str) -> None:
    p = subparsers.add_parser(
        name, help=help_text, formatter_class=HelpFormatter,
        description="Add a tiny configuration (default '3d_tiny') to a planned dataset. It inherits "
                    "spacing and preprocessed data\nfrom SOURCE (default 3d_fullres); only the network, "
                    "patch and batch shrink, so training runs on a CPU\nin seconds per epoch. Also "
                    "copies the dataset's patient-grouped splits_final.json where nnU-Net reads it.",
        epilog="example:\n  nnUNetv2_plan_and_preprocess -d 501 -c 3d_fullres\n"
               "  nnunet_ts tiny-plans -d 501 --epochs 2 --iterations 4 --no-mirroring\n"
               "  nnUNetv2_train 501 3d_tiny 0 -tr BaselineTrainer -device cpu")
    p.add_argument("-d", "--dataset-id", required=True, type=dataset_id, help="nnU-Net dataset id")
    p.add_argument("-p", "--plans", default="nnUNetPlans", help="plans identifier (file name without .json)")
    p.add_argument("--source", default="3d_fullres", help="configuration to inherit from")
    p.add_argument("--name", default="3d_tiny", help="name of the configuration to add")
    p.add_argument("--patch", type=positive_int, nargs=3, default=[32, 64, 64], metavar=("Z", "Y", "X"),
                   help="patch size in voxels, at most the source configuration's patch per axis "
                        "(adjusted to the network's stride)")
    p.add_argument("--features", type=positive_int, nargs="+", default=[8, 16, 32, 64],
                   help="features per encoder stage (their count caps the number of stages)")
    p.add_argument("--batch-size", type=positive_int, default=2, help="batch size")
    p.add_argument("--preprocessed", type=Path, default=None, help="default: $nnUNet_preprocessed")
    p.add_argument("--raw", type=Path, default=None, help="default: $nnUNet_raw (for splits_final.json)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing configuration of that name")
    add_settings_arguments(p, budget_required=False, mirroring_default=True, final_validation_default="always")
    p.set_defaults(func=run)
