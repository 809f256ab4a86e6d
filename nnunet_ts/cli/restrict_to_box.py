"""``nnunet_ts restrict-to-box``: a teacher's predictions with everything outside the dilated box removed."""
from __future__ import annotations

import argparse
from pathlib import Path

from nnunet_ts.cli.formatting import HelpFormatter
from nnunet_ts.cli.validators import non_negative, non_negative_int

DESCRIPTION = """\
Post-process a box-guided teacher's nnUNetv2_predict output: voxels farther than --margin-mm from
the case's segbox become background, in the label map (<case>.nii.gz) and, when nnUNetv2_predict ran
with --save_probabilities, in the class probabilities (<case>.npz: background 1, tumour 0 there).
A case whose segbox is empty comes out empty.

--images is the folder the predictions were made from (<case>_0000 CT, <case>_0001 segbox).
The output folder is written as a whole (built aside, renamed when complete); an interrupted run
resumes with the cases it had finished.

example:
  nnUNetv2_predict -i imagesTs -o pred -d 611 -c 3d_fullres -f 0 -tr BoxTeacherTrainer --save_probabilities
  nnunet_ts restrict-to-box --pred pred --images imagesTs --out pred_in_box --margin-mm 5"""


def register(subparsers, name: str, help_text: str) -> None:
    from nnunet_ts.boxes.restriction import DEFAULT_MARGIN_MM

    p = subparsers.add_parser(name, help=help_text, description=DESCRIPTION,
                              formatter_class=HelpFormatter)
    p.add_argument("--pred", required=True, type=Path, metavar="DIR",
                   help="nnUNetv2_predict output folder of the teacher")
    p.add_argument("--images", required=True, type=Path, metavar="DIR",
                   help="the teacher's input folder (CT _0000 and segbox channel files)")
    p.add_argument("--out", required=True, type=Path, metavar="DIR", help="folder to write")
    p.add_argument("--margin-mm", type=non_negative, default=DEFAULT_MARGIN_MM,
                   help="keep predictions within this 3D distance of the box (mm); 0 = box only")
    p.add_argument("--box-channel", type=non_negative_int, default=1,
                   help="channel index of the segbox in --images (<case>_000N)")
    p.add_argument("--file-ending", default=".nii.gz", help="how image files end")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out folder")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from nnunet_ts.inference.restriction_folder import restrict_prediction_folder

    written = restrict_prediction_folder(args.pred, args.images, args.out, margin_mm=args.margin_mm,
                                         box_channel=args.box_channel, file_ending=args.file_ending,
                                         overwrite=args.overwrite)
    print(f"wrote {len(written)} restricted predictions to {args.out}")
    return 0
