"""``nnunet_ts convert {msd,nsclc,lungdx}``: public cohorts -> nnU-Net raw datasets."""
from __future__ import annotations

import argparse
from pathlib import Path

from nnunet_ts.cli.formatting import HelpFormatter
from nnunet_ts.cli.validators import dataset_id, non_negative, positive_int, real

_COMMON = """\
Writes, for dataset id N (--dataset-id):
  N    <NAME>Teacher  CT + segbox (from the mask) with masks        (strong sources)
  N+1  <NAME>Student  CT with masks (lung crops with --crop-lungs)  (strong sources)
  N+2  <NAME>Weak     CT + segbox from boxes, no masks              (weak cases)
each with splits_final.json grouped by patient and balanced by tumour volume. A dataset with no
cases is skipped and the report says so. The converted NIfTI cohort (CTs, masks, boxes, cases.csv)
and conversion_report.json (every kept case, every dropped scan with its reason) go to --cohort.
Patients are assigned to the test / weak / strong subsets whole, balanced by tumour volume.
An interrupted conversion resumes when rerun with the same arguments; a finished one is replaced
only with --overwrite."""

_SOURCES = {
    "msd": ("Medical Segmentation Decathlon Task06_Lung (NIfTI)",
            "SRC is the extracted Task06_Lung folder (imagesTr/, labelsTr/). Every case is one patient;\n"
            "imagesTs has no labels and is reported as dropped.",
            "nnunet_ts convert msd Task06_Lung --out $nnUNet_raw --dataset-id 610"),
    "nsclc": ("NSCLC-Radiomics (DICOM CT + RTSTRUCT)",
              "SRC holds the patients' DICOM folders (any nesting; series are found by UID). Each CT series\n"
              "is paired with the RTSTRUCT referencing it; the tumour is the union of the ROIs whose whole\n"
              "name matches --roi-pattern (case-insensitive), rasterised onto the CT grid. CTs without\n"
              "RTSTRUCT or without a matching ROI are dropped and listed with the ROI names found.",
              "nnunet_ts convert nsclc NSCLC-Radiomics --out $nnUNet_raw --dataset-id 620"),
    "lungdx": ("Lung-PET-CT-Dx (DICOM + PASCAL-VOC XML boxes)",
               "SRC holds the patients' DICOM folders; --annotations the <SOPInstanceUID>.xml box files\n"
               "(default SRC/Annotation). PET, fused PET/CT, secondary captures and localizers are dropped,\n"
               "and so are CTs whose z-extent (slices x spacing) is outside --z-extent-cm or that have no box.\n"
               "All cases are weak (boxes only): only the weak dataset (N+2) is written.",
               "nnunet_ts convert lungdx Lung-PET-CT-Dx --annotations Annotation --out $nnUNet_raw "
               "--dataset-id 630"),
}
_DEFAULT_NAMES = {"msd": "MSDLung", "nsclc": "NSCLC", "lungdx": "LungDx"}


def run(args: argparse.Namespace) -> int:
    from nnunet_ts.dataset_conversion.common import ConversionOptions, print_report
    from nnunet_ts.nnunet.paths import env_root

    raw = env_root("nnUNet_raw", args.out)
    cohort = args.cohort or raw / "cohorts" / args.source
    options = ConversionOptions(
        dataset_id=args.dataset_id, name=args.name or _DEFAULT_NAMES[args.source],
        test_fraction=args.test_fraction, weak_fraction=args.weak_fraction, segbox_mode=args.segbox,
        num_folds=args.folds, seed=args.seed, overwrite=args.overwrite, crop_lungs=args.crop_lungs,
        lungmask_weights=str(args.lungmask_weights) if args.lungmask_weights else None,
        crop_margin_mm=args.crop_margin_mm, workers=args.workers)
    if args.source == "msd":
        from nnunet_ts.dataset_conversion.msd import convert_msd_lung

        report = convert_msd_lung(args.src, raw, options, cohort)
    elif args.source == "nsclc":
        from nnunet_ts.dataset_conversion.nsclc import convert_nsclc_radiomics

        report = convert_nsclc_radiomics(args.src, raw, options, cohort, roi_pattern=args.roi_pattern)
    else:
        from nnunet_ts.dataset_conversion.lungdx import convert_lung_pet_ct_dx

        report = convert_lung_pet_ct_dx(args.src, raw, options, annotations=args.annotations, cohort=cohort,
                                        z_extent_cm=tuple(args.z_extent_cm))
    print_report(report, Path(cohort))
    return 0


def _add_common(p: argparse.ArgumentParser, source: str) -> None:
    p.add_argument("src", metavar="SRC", type=Path, help="the downloaded cohort, see above")
    p.add_argument("--out", type=Path, default=None, help="nnUNet_raw folder (default: $nnUNet_raw)")
    p.add_argument("-d", "--dataset-id", required=True, type=dataset_id,
                   help="teacher dataset id N; student is N+1, weak N+2")
    p.add_argument("-n", "--name", default=_DEFAULT_NAMES[source], help="dataset name prefix")
    p.add_argument("--cohort", type=Path, default=None,
                   help=f"folder for converted NIfTI, cases.csv and the report (default: OUT/cohorts/{source})")
    p.add_argument("--test-fraction", type=real(0.0, 1.0, upper_open=True),
                   default=0.0 if source == "lungdx" else 0.15, help="share of patients held out as test cases")
    p.add_argument("--weak-fraction", type=real(0.0, 1.0, upper_open=True), default=0.0,
                   help="share of patients of a strong source used as weak (box-only) cases")
    p.add_argument("--segbox", choices=("per_lesion", "per_slice", "box3d"), default="per_lesion",
                   help="segbox form (see `nnunet_ts dataset --help`)")
    p.add_argument("--folds", type=positive_int, default=5, help="cross-validation folds (by patient)")
    p.add_argument("--seed", type=int, default=0, help="seed for subsets and folds")
    p.add_argument("--crop-lungs", action="store_true",
                   help="student dataset of lung crops (one case per lung, see `nnunet_ts predict --help`)")
    p.add_argument("--lungmask-weights", type=Path, default=None,
                   help="lungmask R231 state dict (.pth); default: lungmask's torch hub cache, else a "
                        "classical lung mask with a warning recorded in the dataset")
    p.add_argument("--crop-margin-mm", type=non_negative, default=10.0, help="margin around each lung (mm)")
    p.add_argument("--workers", type=positive_int, default=1, help="processes converting patients in parallel")
    p.add_argument("--overwrite", action="store_true", help="replace an existing cohort folder and datasets")


def register(subparsers, name: str, help_text: str) -> None:
    p = subparsers.add_parser(name, help=help_text, formatter_class=HelpFormatter,
                              description="Convert a public lung-tumour cohort into nnU-Net raw datasets.\n\n"
                                          + _COMMON)
    sources = p.add_subparsers(dest="source", metavar="SOURCE", required=True)
    for source, (title, layout, example) in _SOURCES.items():
        s = sources.add_parser(source, help=title, formatter_class=HelpFormatter,
                               description=f"{title}\n\n{layout}\n\n{_COMMON}", epilog=f"example:\n  {example}")
        _add_common(s, source)
        if source == "nsclc":
            from nnunet_ts.dataset_conversion.nsclc import DEFAULT_ROI_PATTERN

            s.add_argument("--roi-pattern", default=DEFAULT_ROI_PATTERN,
                           help="regular expression for the tumour ROI name (whole name, case-insensitive)")
        if source == "lungdx":
            s.add_argument("--annotations", type=Path, default=None,
                           help="folder of the PASCAL-VOC XML files (default: SRC/Annotation, else SRC)")
            s.add_argument("--z-extent-cm", type=real(0.0), nargs=2, metavar=("MIN", "MAX"),
                           default=[16.0, 60.0], help="keep CTs whose slices x spacing lies in [MIN, MAX] cm")
        s.set_defaults(func=run)
