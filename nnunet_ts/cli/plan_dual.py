"""``nnunet_ts plan-dual``: add the dual-decoder student's configuration to a dataset's nnU-Net plans."""
from __future__ import annotations

import argparse
from pathlib import Path

from nnunet_ts.cli.formatting import HelpFormatter
from nnunet_ts.cli.validators import dataset_id, integer, non_negative

# segbox.SEGBOX_MODES, spelled out so --help does not import scipy and cc3d (a test checks they agree)
SEGBOX_CHOICES = ("per_lesion", "per_slice", "box3d")


def box_decoder_convs(text: str) -> int | None:
    """``--box-decoder-convs``: an integer >= 1, or ``full`` (None: as the segmentation decoder)."""
    return None if text == "full" else integer(minimum=1)(text)


def run(args: argparse.Namespace) -> int:
    from nnunet_ts.errors import InputError
    from nnunet_ts.nnunet.paths import env_root, folders_with_id
    from nnunet_ts.planners.dual_decoder_plans import DualDecoderSettings, add_dual_decoder_configuration

    preprocessed = env_root("nnUNet_preprocessed", args.preprocessed)
    folders = folders_with_id(preprocessed, args.dataset_id)
    if not folders:
        raise InputError(f"no Dataset{args.dataset_id:03d}_* in {preprocessed}; run "
                         f"nnUNetv2_plan_and_preprocess -d {args.dataset_id} -c {args.configuration} first")
    plans_file = folders[0] / f"{args.plans}.json"
    settings = DualDecoderSettings(box_loss_weight=args.box_loss_weight, segbox_mode=args.segbox_mode,
                                   box_decoder_convs=args.box_decoder_convs)
    name, _ = add_dual_decoder_configuration(plans_file, args.configuration, args.name, settings,
                                             overwrite=args.overwrite)
    print(f"added configuration {name!r} to {plans_file}: inherits {args.configuration!r} (same preprocessed "
          f"data), box_loss_weight {settings.box_loss_weight:g}, segbox_mode {settings.segbox_mode!r}, box decoder "
          f"convolutions per stage {settings.box_decoder_convs or 'as the segmentation decoder (full)'}")
    print(f"train it with: nnUNetv2_train {args.dataset_id} {name} FOLD -tr DualDecoderStudentTrainer")
    return 0


def register(subparsers, name: str, help_text: str) -> None:
    p = subparsers.add_parser(
        name, help=help_text, formatter_class=HelpFormatter,
        description="Add the dual-decoder student's configuration (default '<configuration>_dual') to a "
                    "planned student\ndataset. It inherits everything from CONFIGURATION (spacing, patch, "
                    "network, preprocessed data:\nnothing is preprocessed again) and records the box loss "
                    "weight lambda (loss = seg loss + lambda *\nbox loss, Dice + BCE) and the form of the "
                    "strong cases' segboxes, which DualDecoderStudentTrainer\nreads. Pseudo cases always "
                    "learn their annotated boxes (segboxesTr/ of the student dataset).",
        epilog="examples:\n  nnUNetv2_plan_and_preprocess -d 502 -c 3d_fullres\n"
               "  nnunet_ts plan-dual -d 502\n"
               "  nnUNetv2_train 502 3d_fullres_dual 0 -tr DualDecoderStudentTrainer\n\n"
               "  nnunet_ts plan-dual -d 502 -c 3d_tiny --box-loss-weight 0.5   # adds 3d_tiny_dual\n"
               "  nnunet_ts plan-dual -d 502 --box-decoder-convs 1 --overwrite   # a lighter box decoder")
    p.add_argument("-d", "--dataset-id", required=True, type=dataset_id, help="student dataset id")
    p.add_argument("-p", "--plans", default="nnUNetPlans", help="plans identifier (file name without .json)")
    p.add_argument("-c", "--configuration", default="3d_fullres",
                   help="planned configuration to inherit from")
    p.add_argument("--name", default=None, help="name of the configuration to add (default: CONFIGURATION_dual)")
    p.add_argument("--box-loss-weight", type=non_negative, default=1.0, metavar="L",
                   help="lambda, the weight of the segbox decoder's loss (the paper: 1; 0 leaves it untrained)")
    p.add_argument("--segbox-mode", choices=SEGBOX_CHOICES, default="per_lesion",
                   help="strong cases' segbox: per_lesion = a rectangle per lesion and slice, per_slice = one "
                        "per slice (the paper), box3d = a 3D box per lesion")
    p.add_argument("--box-decoder-convs", type=box_decoder_convs, default=None, metavar="N|full",
                   help="convolutions per stage of the segbox decoder: 'full' (default) copies the segmentation "
                        "decoder, the paper's two identical decoders (an iteration ~1.70x the single-output "
                        "student's FLOPs); N is lighter (1: ~1.47x); see scripts/benchmarks/dual_decoder.py")
    p.add_argument("--preprocessed", type=Path, default=None, help="default: $nnUNet_preprocessed")
    p.add_argument("--overwrite", action="store_true", help="replace an existing configuration of that name")
    p.set_defaults(func=run)
