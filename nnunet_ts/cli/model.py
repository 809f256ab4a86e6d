"""``nnunet_ts model export|install|show``: a trained model as one zip, installed elsewhere."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from nnunet_ts.cli.formatting import HelpFormatter
from nnunet_ts.cli.validators import non_negative

DESCRIPTION = """\
Share a trained model (a student, the baseline or a box-guided teacher):

  export   MODEL_FOLDER -o model.zip   pack what predict needs: plans.json, dataset.json, the folds'
           checkpoints, and nnunet_ts_model.json (trainer, plans, configuration, input channels, the
           teacher's box form, whether it was trained on lung crops and their margin, our version)
  install  model.zip                   unpack into nnUNet_results (or --results); prints the folder
           to pass to `nnunet_ts predict -m`
  show     MODEL_FOLDER                print the model's record

The zip has nnU-Net's own export layout (DatasetXXX_Name/<Trainer>__<Plans>__<config>/...), so stock
nnUNetv2_install_pretrained_model_from_zip installs it too, and `model install` installs zips written
by nnUNetv2_export_model_to_zip. predict reads the record: lung cropping follows the model's training
(the flags still override), and a teacher's boxes must have its form."""

EPILOG = """\
examples:
  nnunet_ts model export \\
      $nnUNet_results/Dataset504_LungPseudo/TeacherStudentTrainer__nnUNetPlans__3d_fullres -o student.zip
  nnunet_ts model install student.zip --results /data/nnUNet_results
  nnunet_ts predict ct.nii.gz tumour.nii.gz \\
      -m /data/nnUNet_results/Dataset504_LungPseudo/TeacherStudentTrainer__nnUNetPlans__3d_fullres"""


def register(subparsers, name: str, help_text: str) -> None:
    from nnunet_ts.boxes.segbox import SEGBOX_MODES

    p = subparsers.add_parser(name, help=help_text, description=DESCRIPTION, epilog=EPILOG,
                              formatter_class=HelpFormatter)
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    e = sub.add_parser("export", help="pack a trained model folder into a zip", formatter_class=HelpFormatter)
    e.add_argument("model", type=Path, metavar="MODEL_FOLDER",
                   help="nnUNet_results/DatasetXXX_Name/<Trainer>__<Plans>__<configuration>")
    e.add_argument("-o", "--output", required=True, type=Path, help="zip file to write")
    e.add_argument("-f", "--folds", nargs="+", default=None, help="folds to pack (default: every trained fold)")
    e.add_argument("-chk", "--checkpoints", nargs="+", default=["checkpoint_final.pth"],
                   help="checkpoint files to pack per fold (the first is the one predict uses)")
    e.add_argument("--crop-lungs", action=argparse.BooleanOptionalAction, default=None,
                   help="record that the model was trained on lung crops (default: the raw dataset's "
                        "lung_crops.json under $nnUNet_raw, else no)")
    e.add_argument("--crop-margin-mm", type=non_negative, default=None, help="the crops' margin (mm)")
    e.add_argument("--segbox-form", choices=SEGBOX_MODES, default=None,
                   help="a teacher's box form when dataset.json does not record it")
    e.add_argument("--overwrite", action="store_true", help="replace an existing zip")
    e.set_defaults(func=run_export)
    i = sub.add_parser("install", help="unpack a model zip into nnUNet_results", formatter_class=HelpFormatter)
    i.add_argument("zip", type=Path, help="a zip from `nnunet_ts model export` or nnUNetv2_export_model_to_zip")
    i.add_argument("--results", type=Path, default=None, help="nnUNet_results folder (default: $nnUNet_results)")
    i.add_argument("--overwrite", action="store_true", help="replace an installed model of the same name")
    i.set_defaults(func=run_install)
    s = sub.add_parser("show", help="print a model's record", formatter_class=HelpFormatter)
    s.add_argument("model", type=Path, metavar="MODEL_FOLDER")
    s.set_defaults(func=run_show)


def run_export(args: argparse.Namespace) -> int:
    import os

    from nnunet_ts.inference.model_package import export_model

    info = export_model(args.model, args.output, folds=args.folds, checkpoints=args.checkpoints,
                        crop_lungs=args.crop_lungs, crop_margin_mm=args.crop_margin_mm,
                        segbox_form=args.segbox_form, raw_root=os.environ.get("nnUNet_raw") or None,
                        overwrite=args.overwrite)
    form = f", {info.segbox_form} boxes" if info.is_teacher else ""
    crops = f", lung crops ({info.crop_margin_mm:g} mm)" if info.crop_lungs else ""
    print(f"wrote {args.output}: {info.dataset}/{info.trainer}__{info.plans}__{info.configuration}, "
          f"fold(s) {', '.join(info.folds)}{form}{crops}")
    return 0


def run_install(args: argparse.Namespace) -> int:
    from nnunet_ts.inference.model_package import install_model
    from nnunet_ts.nnunet.paths import env_root

    for folder in install_model(args.zip, env_root("nnUNet_results", args.results), overwrite=args.overwrite):
        print(f"installed {folder}  (use: nnunet_ts predict INPUT OUTPUT -m {folder})")
    return 0


def run_show(args: argparse.Namespace) -> int:
    import os

    from nnunet_ts.inference.model_package import read_model_info

    info = read_model_info(args.model, os.environ.get("nnUNet_raw") or None)
    print(json.dumps({**info.to_json(), "source": info.source}, indent=1))
    return 0
