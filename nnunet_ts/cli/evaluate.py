"""``nnunet_ts evaluate``: the paper's metrics for a folder of predictions (see nnunet_ts.evaluation.metrics)."""
from __future__ import annotations

import argparse

from nnunet_ts.cli.formatting import HelpFormatter
from nnunet_ts.cli.validators import fraction, non_negative, open_fraction

DESCRIPTION = """\
Score predictions against ground-truth masks with the paper's metrics: per-case DSC, DSC-TP and
lesion-level precision, recall and F1, each averaged over cases (mean ± population std, ddof=0).

Files are paired by name: <case><file-ending> in --pred and in --gt (e.g. nnU-Net's prediction
folder and labelsTr). Both must share the voxel grid (size, spacing, origin, direction).
Writes evaluation_per_case.csv and evaluation_summary.json into --out and prints a table."""

DEFINITIONS = """\
definitions (per case, in this order):
  prediction   integer image = label map, foreground label > 0; float image = probability map,
               foreground value >= --threshold. Ground truth: foreground label > 0.
  --largest-component
               keep only the largest 3D connected component of the prediction, before all else.
  DSC          2|P∩G| / (|P| + |G|), before small components are dropped; 1.0 when both are
               empty, 0.0 when only one is.
  small comps  predicted components with volume < --min-lesion-mm3 (voxels x voxel volume from
               the image spacing) are dropped before lesion-level counting and DSC-TP.
  lesion       3D connected component (--connectivity) of the ground truth.
  TP / FN      a lesion is found (TP) when the kept prediction covers >= --overlap of its
               voxels, else missed (FN).
  FP           a kept predicted component with < --overlap of its voxels in the ground truth.
  precision    TP / (TP + FP); undefined when TP + FP = 0 (nothing predicted).
  recall       TP / (TP + FN); undefined when the ground truth has no lesion.
  F1           2TP / (2TP + FP + FN) (= 2PR / (P + R)); undefined when TP + FP + FN = 0
               (an empty prediction of a tumour-free case).
  undefined    NaN in the per-case table, left out of the mean and counted (n).
  DSC-TP       Dice of the found lesions vs the kept components touching them; undefined
               (NaN, left out of the mean, counted) when a case has no TP.

Missing predictions are an error unless --allow-missing (then they count as empty). To report
with and without --largest-component, run twice with different --out folders."""


def register(subparsers, name: str, help_text: str) -> None:
    p = subparsers.add_parser(name, help=help_text, description=DESCRIPTION, epilog=DEFINITIONS,
                              formatter_class=HelpFormatter)
    p.add_argument("--pred", required=True, metavar="DIR",
                   help="folder of predictions (label maps or probability maps)")
    p.add_argument("--gt", required=True, metavar="DIR",
                   help="folder of binary ground-truth masks with the same file names")
    p.add_argument("--out", metavar="DIR", default=None,
                   help="where to write the results (default: the --pred folder)")
    p.add_argument("--threshold", type=open_fraction, default=0.5,
                   help="probability maps: foreground where value >= threshold; in (0, 1)")
    p.add_argument("--min-lesion-mm3", type=non_negative, default=100.0,
                   help="drop predicted components smaller than this volume (mm^3) before "
                        "lesion-level counting; 0 keeps all")
    p.add_argument("--overlap", type=fraction, default=0.25,
                   help="fraction of a lesion that must be covered to count as found (and of a "
                        "predicted component that must lie in the ground truth not to be a false "
                        "positive); in (0, 1]")
    p.add_argument("--connectivity", type=int, choices=(6, 18, 26), default=26,
                   help="3D voxel connectivity of lesions and predicted components")
    p.add_argument("--largest-component", action="store_true",
                   help="keep only the largest connected component of each prediction first")
    p.add_argument("--file-ending", default=".nii.gz", help="how case files end")
    p.add_argument("--allow-missing", action="store_true",
                   help="count ground truths without a prediction as empty predictions")
    p.add_argument("--overwrite", action="store_true", help="replace existing result files")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from nnunet_ts.evaluation.folder import PER_CASE_NAME, SUMMARY_NAME, evaluate_folders, format_summary
    from nnunet_ts.evaluation.metrics import EvaluationSettings

    settings = EvaluationSettings(threshold=args.threshold, min_lesion_mm3=args.min_lesion_mm3,
                                  overlap=args.overlap, connectivity=args.connectivity,
                                  largest_component=args.largest_component)
    summary = evaluate_folders(args.pred, args.gt, args.out, settings=settings,
                               file_ending=args.file_ending, allow_missing=args.allow_missing,
                               overwrite=args.overwrite)
    out = args.out if args.out is not None else args.pred
    print(format_summary(summary))
    if summary["missing_predictions"]:
        print(f"counted as empty (no prediction): {', '.join(summary['missing_predictions'])}")
    print(f"wrote {out}/{PER_CASE_NAME} and {out}/{SUMMARY_NAME}")
    return 0
