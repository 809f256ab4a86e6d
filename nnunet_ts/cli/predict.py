"""``nnunet_ts predict``: CTs in, tumour masks, lesion tables and clinical outputs out (the end-user command)."""
from __future__ import annotations

import argparse
from pathlib import Path

from nnunet_ts.cli.formatting import HelpFormatter
from nnunet_ts.cli.validators import non_negative, non_negative_int, open_fraction, real

_DESCRIPTION = """\
Segment lung tumours in CT with a trained model, through nnU-Net's nnUNetPredictor (sliding window,
mirroring if the trainer allows it, folds averaged). A CT-only model (a student or the baseline)
needs the CT; a box-guided teacher also needs the reader's boxes (--boxes).

INPUT: an image file (NIfTI/NRRD/MHA, in HU), a folder holding one DICOM CT series, or a folder of
scans (image files at its top, DICOM series anywhere below; non-CT series are left out and listed).
OUTPUT: NAME.nii.gz for one scan (other outputs beside it: NAME_seg.dcm ...) or a folder:
  OUT/<case>.nii.gz          mask (uint8, 1 = tumour) in the input's exact geometry
                             (--threshold -1: the tumour probability, float32, instead)
  OUT/<case>_seg.dcm         DICOM-SEG           (--output-type dicom-seg; DICOM input only)
  OUT/<case>_rtstruct.dcm    RTSTRUCT            (--output-type rtstruct;  DICOM input only)
  OUT/<case>_lesions.csv     one row per lesion (also .json, and printed)
  OUT/<case>_preview.png     key slices with the mask outlined (--preview)
<case> is an image file's name without its ending, or a DICOM series' folder path below INPUT.
A rerun skips scans whose outputs are complete and newer than their inputs (same settings); one
scan that fails is reported and the others go on; the exit status then says it (3 when every
failure was bad input, 1 otherwise).

Box prompts (--boxes, box-guided teacher): a 'nnunet_ts.boxes' JSON of per-slice rectangles, a
PASCAL-VOC XML file or folder (Lung-PET-CT-Dx: <SOPInstanceUID>.xml, DICOM input), or 3D boxes in
patient mm: {"format": "nnunet_ts.box3d_mm", "version": 1, "coordinates": "LPS",
"boxes": [{"min": [x, y, z], "max": [x, y, z]}]}. The form must be the teacher's (per-slice vs 3D).
With a folder INPUT, --boxes is a folder of <case>_boxes.json (or <case>.json, or VOC XML files).

Post-processing flags mean what they mean in LungTumorMask: --threshold (probability > t),
--lung-filter (voxel-wise, outside the lungs = 0), --radius (per-slice 2D closing). Our 3D
operations have their own names: --lung-components, --smooth.

Lung masks (--lung-filter, --lung-components, lung crops) come from lungmask R231 when its weights
are on disk (--lungmask-weights, or lungmask's cache ~/.cache/torch/hub/checkpoints/unet_r231-d5d2fc3d.pth);
otherwise a classical HU-threshold lung mask is used and a warning is printed. A model exported by
`nnunet_ts model export` records whether it was trained on lung crops: predict then crops likewise
(--crop-lungs/--no-crop-lungs override it, with a note)."""

_EPILOG = """\
examples:
  nnunet_ts predict ct.nii.gz tumour.nii.gz \\
      -m $nnUNet_results/Dataset504_LungPseudo/TeacherStudentTrainer__nnUNetPlans__3d_fullres
  nnunet_ts predict dicom_root/ out/ -m MODEL --output-type nifti dicom-seg rtstruct --preview
  nnunet_ts predict ct.nii.gz tumour.nii.gz -m TEACHER --boxes ct_boxes.json
  nnunet_ts predict ct.nii.gz prob.nii.gz -m MODEL --threshold -1          # probabilities (float32)"""


def _threshold(text: str) -> float:
    if text.strip() == "-1":
        return -1.0
    return real(0.0, 1.0)(text)


def _note(message: str) -> None:
    import sys

    print(f"note: {message}", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    import os

    from nnunet_ts.errors import EXIT_BAD_INPUT, EXIT_FAILURE, EXIT_OK, InputError
    from nnunet_ts.inference.batch import CaseJob, OutputRequest, check_request, run_jobs
    from nnunet_ts.inference.box_prompt import box_file_form, check_form, prompt_segbox, read_box_prompt
    from nnunet_ts.inference.cases import find_cases
    from nnunet_ts.inference.model_package import read_model_info, trained_folds
    from nnunet_ts.inference.predict import PredictOptions, load_predictor

    discovery = find_cases(args.input, args.series_uid)  # the scans first: their errors before the model's
    info = read_model_info(args.model, os.environ.get("nnUNet_raw") or None)
    if info.is_teacher and args.boxes is None:
        raise InputError(f"model {args.model} is a box-guided teacher (channels {list(info.channels)}): pass "
                         f"the reader's boxes with --boxes FILE")
    if not info.is_teacher and args.boxes is not None:
        raise InputError(f"model {args.model} reads the CT only; --boxes needs a box-guided teacher "
                         f"(drop --boxes or pass a teacher with -m)")
    crop = bool(info.crop_lungs) if args.crop_lungs is None else args.crop_lungs
    if info.crop_lungs is not None and args.crop_lungs is not None and args.crop_lungs != info.crop_lungs:
        _note(f"model {'was' if info.crop_lungs else 'was not'} trained on lung crops ({info.source}); "
              f"{'--crop-lungs' if crop else '--no-crop-lungs'} overrides that")
    margin = info.crop_margin_mm if args.crop_margin_mm is None else args.crop_margin_mm
    if crop and args.crop_margin_mm is not None and info.crop_lungs and margin != info.crop_margin_mm:
        _note(f"model's lung crops had a {info.crop_margin_mm:g} mm margin ({info.source}); using {margin:g} mm")
    checkpoint = args.checkpoint or info.checkpoint or "checkpoint_final.pth"
    device = "cpu" if args.cpu else args.device
    try:
        options = PredictOptions(
            threshold=args.threshold, lung_filter=args.lung_filter, lung_components=args.lung_components,
            radius=args.radius, smooth=args.smooth, device=device, crop_lungs=crop, crop_margin_mm=margin,
            lungmask_weights=str(args.lungmask_weights) if args.lungmask_weights else None,
            folds=tuple(args.folds) if args.folds else None, checkpoint=checkpoint,
            mirroring=not args.no_mirroring, step_size=args.step_size, box_margin_mm=args.box_margin_mm,
            interpolate_boxes=args.interpolate_boxes)
    except ValueError as exc:
        raise InputError(str(exc)) from None

    cases, output = discovery.cases, Path(args.output)
    single_file = str(output).endswith(".nii.gz")
    if single_file and len(cases) > 1:
        raise InputError(f"{args.input} holds {len(cases)} scans; OUTPUT must then be a folder, not {output}")
    if not single_file and output.is_file():
        raise InputError(f"OUTPUT {output} is a file; give NAME.nii.gz or a folder")
    if args.boxes is not None and args.boxes.is_file() and len(cases) > 1:
        raise InputError(f"--boxes {args.boxes} is one file but {args.input} holds {len(cases)} scans; give a "
                         f"folder of <case>_boxes.json files")
    jobs = []
    for case in cases:
        stem = output.with_name(output.name[:-len(".nii.gz")]) if single_file else output / case.case_id
        jobs.append(CaseJob(case, stem, _case_boxes(args.boxes, case.case_id, len(cases))))
    request = OutputRequest(types=tuple(dict.fromkeys(args.output_type)), preview=args.preview)
    check_request(request, options, jobs)
    for job in jobs:  # a box file of the wrong form is refused before anything runs
        if job.boxes is not None and (job.boxes.is_file() or len(jobs) == 1):
            check_form(box_file_form(job.boxes), info.segbox_form, job.boxes, args.model)
    if single_file and "nifti" not in request.types:
        _note(f"no NIfTI is written (--output-type {' '.join(request.types)}); {output} names the other outputs")

    model = Path(args.model)
    folds = options.folds or trained_folds(model, checkpoint)
    settings = {"model": str(model.resolve()), "folds": list(folds), **options.settings()}

    def segbox_for(job: CaseJob, image):
        size = image.GetSize()
        prompt = read_box_prompt(job.boxes, (size[2], size[1], size[0]), job.case.sop_uids())
        for note in prompt.notes:
            _note(f"{job.case.case_id}: {note}")
        return prompt_segbox(prompt, image, info.segbox_form, str(model), options.interpolate_boxes)

    summary = run_jobs(jobs, lambda: load_predictor(model, options, teacher=info.is_teacher), options, request,
                       settings, [model / f"fold_{f}" / checkpoint for f in folds],
                       segbox_for=segbox_for if info.is_teacher else None, overwrite=args.overwrite)
    summary.ignored = discovery.ignored
    if len(cases) > 1 or summary.skipped or summary.failed or summary.ignored:
        print("\n".join(summary.lines()))
    if not summary.failed:
        return EXIT_OK
    return EXIT_FAILURE if summary.unexpected else EXIT_BAD_INPUT


def _case_boxes(boxes: Path | None, case_id: str, n_cases: int) -> Path | None:
    """The box file of one case: --boxes itself (one scan, a file or VOC folder), else from the folder."""
    if boxes is None:
        return None
    if n_cases == 1 or boxes.is_file():
        return boxes
    for name in (f"{case_id}_boxes.json", f"{case_id}.json", f"{case_id}_box3d.json"):
        if (boxes / name).is_file():
            return boxes / name
    return boxes  # VOC XML files named by SOPInstanceUID (or: a clear error when read)


def register(subparsers, name: str, help_text: str) -> None:
    from nnunet_ts.boxes.restriction import DEFAULT_MARGIN_MM
    from nnunet_ts.inference.cases import OUTPUT_TYPES

    p = subparsers.add_parser(name, help=help_text, description=_DESCRIPTION, formatter_class=HelpFormatter,
                              epilog=_EPILOG)
    p.add_argument("input", metavar="INPUT", type=Path, help="CT image file, DICOM folder or folder of scans")
    p.add_argument("output", metavar="OUTPUT", type=Path, help="NAME.nii.gz (one scan) or a folder")
    p.add_argument("-m", "--model", required=True, type=Path,
                   help="trained model folder (holds plans.json, dataset.json, fold_*/)")
    p.add_argument("--output-type", nargs="+", choices=OUTPUT_TYPES, default=["nifti"], metavar="TYPE",
                   help=f"outputs to write, one or more of: {', '.join(OUTPUT_TYPES)}")
    p.add_argument("--preview", action="store_true", help="also write a PNG of key slices per scan")
    g = p.add_argument_group("box-guided teacher")
    g.add_argument("--boxes", type=Path, default=None, metavar="FILE|DIR",
                   help="the reader's boxes (per-slice JSON, VOC XML, or 3D boxes in mm; see above)")
    g.add_argument("--box-margin-mm", type=non_negative, default=DEFAULT_MARGIN_MM,
                   help="tumour probability is 0 farther than this from every box (3D, mm)")
    g.add_argument("--interpolate-boxes", action="store_true",
                   help="boxes drawn on some slices of a lesion: fill the slices between them")
    g = p.add_argument_group("post-processing (LungTumorMask's names and meanings, plus two of ours)")
    g.add_argument("--threshold", type=_threshold, default=0.5,
                   help="tumour where probability > threshold, in [0, 1]; -1 writes probabilities")
    g.add_argument("--lung-filter", action="store_true",
                   help="voxel-wise: set everything outside the lung mask to 0 (mask or probabilities)")
    g.add_argument("--radius", type=non_negative_int, default=0,
                   help="per axial slice, 2D closing with a disk of this radius (voxels); 0 = off")
    g.add_argument("--lung-components", action="store_true",
                   help="keep only tumour components (3D) that touch the lungs, whole")
    g.add_argument("--smooth", type=non_negative_int, default=0,
                   help="3D closing then opening with a ball of this radius (voxels); 0 = off")
    g = p.add_argument_group("model and device (nnU-Net's spellings accepted)")
    g.add_argument("-f", "--folds", nargs="+", default=None, help="folds to average (default: all trained)")
    g.add_argument("-chk", "--checkpoint", default=None,
                   help="checkpoint file in each fold (default: the model's record, else checkpoint_final.pth)")
    g.add_argument("-device", "--device", choices=("cpu", "cuda"), default=None,
                   help="where the network runs (default: cuda when available)")
    g.add_argument("--cpu", action="store_true", help="same as -device cpu")
    g.add_argument("-step_size", "--step-size", type=open_fraction, default=0.5,
                   help="sliding-window step (fraction of a patch)")
    g.add_argument("--no-mirroring", "--disable_tta", action="store_true",
                   help="no test-time mirroring (8x faster in 3D)")
    g.add_argument("--crop-lungs", action=argparse.BooleanOptionalAction, default=None,
                   help="predict one crop per lung (+ margin) and paste back (default: as the model was trained)")
    g.add_argument("--crop-margin-mm", type=non_negative, default=None,
                   help="margin around each lung (mm; default: the model's, else 10)")
    g.add_argument("--lungmask-weights", type=Path, default=None, help="lungmask R231 state dict (.pth)")
    g.add_argument("--series-uid", default=None, help="DICOM input: only the CT series with this UID")
    p.add_argument("--overwrite", action="store_true",
                   help="replace outputs made with other settings (finished ones are always kept)")
    p.set_defaults(func=run)
