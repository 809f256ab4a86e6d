"""``nnunet_ts synth``: write a synthetic chest-CT cohort (CTs, tumour masks, boxes, manifest)."""
from __future__ import annotations

import argparse
from pathlib import Path

from nnunet_ts.cli.formatting import HelpFormatter
from nnunet_ts.cli.validators import integer, non_negative_int, positive_int

_DESCRIPTION = """\
Generate synthetic thorax CTs with lung tumours: the built-in dataset for demos and tests.

Outputs in OUT_DIR:
  cases.csv               manifest (case_id, patient_id, subset, ct, mask, boxes) for `nnunet_ts dataset`
  synth_NNNN_ct.nii.gz    CT in HU (int16, clipped to [-1024, 3071])
  synth_NNNN_mask.nii.gz  binary tumour mask (0/1) on the CT grid
  synth_NNNN_boxes.json   per-slice rectangles around each tumour (the weak labels)
  lesions.json            every tumour's centre, diameter, HU and attachment; spacing and noise
  synth.json              seed and settings, to regenerate the cohort

Cases are numbered strong first, then weak, then test. Case i depends only on (--seed, i), so
asking for more cases never changes the existing ones. About 30 % of patients get two scans;
a patient never straddles two subsets.

HU model: air -1000; lungs about -850 with texture (denser posteriorly), branching vessels
(35-50 HU, the tumour-like distractors) and bronchi; subcutaneous and mediastinal fat about -100;
muscle, heart and great vessels 35-55; bone 380-1000 (spine, ribs, sternum); liver and stomach
below the diaphragm; the CT table. 0-3 lobulated tumours per case (P = 0.1, 0.5, 0.3,
0.1), 5-60 mm, 0-60 HU with blurred edges, some against the chest wall or mediastinum. Gaussian
scanner noise of 10-30 HU, slightly correlated in-plane.

Presets (the image shape is fixed, the spacing varies per case):
  compact   (default shape 64 128 128) the whole thorax on few voxels: in-plane spacing scaled so
            the FOV is 320-450 mm (2.5-3.5 mm at 128 px); slice spacing for 160-300 mm coverage
  clinical  (default shape 128 512 512) in-plane spacing 0.6-1.0 mm, slices 1-5 mm; ~20x slower"""


_seed = integer(0, 2 ** 63 - 1)


def _size(text: str) -> int:
    from nnunet_ts.synth.config import MIN_SIZE

    value = positive_int(text)
    if value < MIN_SIZE:
        raise argparse.ArgumentTypeError(f"{value} is too small; each image size must be >= {MIN_SIZE} voxels")
    return value


def run(args: argparse.Namespace) -> int:
    from nnunet_ts.errors import InputError
    from nnunet_ts.synth.config import SynthConfig
    from nnunet_ts.synth.writer import write_cohort

    try:
        config = SynthConfig.preset(args.preset, args.shape)
    except ValueError as exc:
        raise InputError(f"invalid --preset/--shape: {exc}") from None
    records = write_cohort(args.out_dir, args.n_strong, args.n_weak, args.n_test, seed=args.seed,
                           config=config, overwrite=args.overwrite, workers=args.workers)
    counts = {s: sum(r.subset == s for r in records) for s in ("strong", "weak", "test")}
    patients = len({r.patient_id for r in records})
    print(f"wrote {len(records)} cases of {patients} patients ({counts['strong']} strong, "
          f"{counts['weak']} weak, {counts['test']} test) to {Path(args.out_dir)}")
    return 0


def register(subparsers, name: str, help_text: str) -> None:
    p = subparsers.add_parser(name, help=help_text, description=_DESCRIPTION,
                              formatter_class=HelpFormatter,
                              epilog="example:\n  nnunet_ts synth synth_cases --n-strong 8 --n-weak 16 "
                                     "--n-test 4\n  nnunet_ts dataset teacher --cases synth_cases -d 501 "
                                     "-n LungTeacher")
    p.add_argument("out_dir", metavar="OUT_DIR", type=Path,
                   help="folder to create (must be empty or absent, unless --overwrite)")
    p.add_argument("--n-strong", type=non_negative_int, default=8, help="cases with voxel masks")
    p.add_argument("--n-weak", type=non_negative_int, default=16, help="cases used with boxes only")
    p.add_argument("--n-test", type=non_negative_int, default=4, help="held-out test cases")
    p.add_argument("--seed", type=_seed, default=0, help="cohort seed")
    p.add_argument("--preset", choices=("compact", "clinical"), default="compact",
                   help="resolution preset, see above")
    p.add_argument("--shape", type=_size, nargs=3, metavar=("Z", "Y", "X"), default=None,
                   help="image size in voxels; the preset's when not given")
    p.add_argument("--workers", type=positive_int, default=None,
                   help="processes generating cases; all CPUs when not given")
    p.add_argument("--overwrite", action="store_true",
                   help="replace OUT_DIR if it holds an earlier cohort (only once the new one is complete)")
    p.set_defaults(func=run)
