"""``nnunet_ts predict``: a CT in, a tumour mask out (the end-user command)."""
from __future__ import annotations

import argparse
from pathlib import Path

from nnunet_ts.cli.formatting import HelpFormatter
from nnunet_ts.cli.validators import non_negative, non_negative_int, open_fraction

_DESCRIPTION = """\
Segment lung tumours in one CT with a trained CT-only model (the student or a baseline), through
nnU-Net's nnUNetPredictor (sliding window, mirroring if the trainer allows it, folds averaged).

INPUT is a NIfTI/NRRD/MHA file in HU or a DICOM folder holding one CT series (else --series-uid).
OUTPUT (.nii.gz) has exactly the input's size, spacing, origin and direction:
  default            binary mask (uint8, 1 = tumour) where probability >= --threshold
  --threshold -1     the tumour probability map (float32, 0-1) instead

Lung masks (for --lung-filter and --crop-lungs) come from lungmask R231 when its weights are on disk
(--lungmask-weights, or lungmask's cache ~/.cache/torch/hub/checkpoints/unet_r231-d5d2fc3d.pth);
otherwise a classical HU-threshold lung mask is used and a warning is printed."""


def _threshold(text: str) -> float:
    if text.strip() == "-1":
        return -1.0
    return open_fraction(text)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from nnunet_ts.errors import InputError
    from nnunet_ts.inference.predict import PredictOptions, load_predictor, predict_ct, read_ct_input, write_like

    if not str(args.output).endswith(".nii.gz"):
        raise InputError(f"output {args.output} must end in .nii.gz")
    try:
        options = PredictOptions(
            threshold=args.threshold, lung_filter=args.lung_filter, radius=args.radius, cpu=args.cpu,
            crop_lungs=args.crop_lungs, crop_margin_mm=args.crop_margin_mm,
            lungmask_weights=str(args.lungmask_weights) if args.lungmask_weights else None,
            folds=tuple(args.folds) if args.folds else None, checkpoint=args.checkpoint,
            mirroring=not args.no_mirroring, step_size=args.step_size)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    # reading, model, probability, writing; lung mask; a second crop; lung filter; smoothing
    steps = 4 + (options.crop_lungs or options.lung_filter) + options.crop_lungs + options.lung_filter \
        + bool(options.radius)
    with tqdm(total=steps, unit="step",
              bar_format="{desc:<34}{bar:20} {n_fmt}/{total_fmt} [{elapsed}]") as bar:
        def step(name: str) -> None:
            bar.set_description_str(name)
            bar.update(1)

        step("reading CT")
        image = read_ct_input(args.input, args.series_uid)
        step("loading model")
        predictor = load_predictor(args.model, options)
        result, info = predict_ct(image, predictor, options, progress=step)
        step("writing")
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        write_like(result, image, args.output)
    what = "probability map" if options.threshold == -1 else f"mask ({int(result.sum())} tumour voxels)"
    print(f"wrote {args.output}: {what}" + (f"; lung mask: {info['lung_mask']}" if "lung_mask" in info else ""))
    return 0


def register(subparsers, name: str, help_text: str) -> None:
    p = subparsers.add_parser(name, help=help_text, description=_DESCRIPTION, formatter_class=HelpFormatter,
                              epilog="example:\n  nnunet_ts predict ct.nii.gz tumour.nii.gz -m "
                                     "$nnUNet_results/Dataset611_NSCLCStudent/nnUNetTrainer__nnUNetPlans__3d_fullres "
                                     "--lung-filter --radius 1")
    p.add_argument("input", metavar="INPUT", type=Path, help="CT image file or DICOM folder")
    p.add_argument("output", metavar="OUTPUT", type=Path, help="output .nii.gz")
    p.add_argument("-m", "--model", required=True, type=Path,
                   help="trained model folder (holds plans.json, dataset.json, fold_*/)")
    p.add_argument("--threshold", type=_threshold, default=0.5,
                   help="tumour where probability >= threshold, in (0, 1); -1 writes probabilities")
    p.add_argument("--lung-filter", action="store_true", help="drop tumour components not touching the lungs")
    p.add_argument("--radius", type=non_negative_int, default=0,
                   help="smoothing: closing then opening with a ball of this radius (voxels); 0 = off")
    p.add_argument("--cpu", action="store_true", help="run on the CPU even if a GPU is available")
    p.add_argument("--crop-lungs", action="store_true",
                   help="predict one crop per lung (+ margin) and paste back, as the student was trained")
    p.add_argument("--crop-margin-mm", type=non_negative, default=10.0, help="margin around each lung (mm)")
    p.add_argument("--lungmask-weights", type=Path, default=None, help="lungmask R231 state dict (.pth)")
    p.add_argument("--series-uid", default=None, help="DICOM input: the CT series to use")
    p.add_argument("-f", "--folds", nargs="+", default=None, help="folds to average (default: all trained)")
    p.add_argument("--checkpoint", default="checkpoint_final.pth", help="checkpoint file in each fold")
    p.add_argument("--no-mirroring", action="store_true", help="no test-time mirroring (8x faster in 3D)")
    p.add_argument("--step-size", type=open_fraction, default=0.5, help="sliding-window step (fraction of a patch)")
    p.set_defaults(func=run)
