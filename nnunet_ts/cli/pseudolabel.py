"""``nnunet_ts pseudolabel``: a trained teacher's soft outputs on the weak set, as a student dataset."""
from __future__ import annotations

import argparse
from pathlib import Path

from nnunet_ts.cli.formatting import HelpFormatter
from nnunet_ts.cli.validators import dataset_id, fraction, non_negative, non_negative_int, positive_int

DESCRIPTION = """\
Run a trained box-guided teacher on the weak (box-only) scans and write a student dataset: the
strong cases copied in, and per weak case the teacher's foreground probability (the soft target,
not thresholded), a hard mask (>= 0.5) for nnU-Net's bookkeeping, and the case's real segbox.

ROI mode (default) cuts each box grown by --margin-mm out of the scan together with the whole-volume
prediction's tiles that reach it, and runs nnU-Net's pipeline (resampling, those tiles, export) on
that crop only: inside the regions the map is the whole-volume prediction's, elsewhere background,
and on clinical-size CTs it is several times faster than nnU-Net's whole-volume prediction.
--mode full predicts the whole volume. Folds are combined by soft voting (mean of their
probabilities).

Resumable: finished cases are kept in nnUNet_raw/.DatasetXXX_Name.pseudolabel/ and skipped on a
rerun with the same settings. Shards: run --num-parts N --part-id 0..N-1 (at once, on machines
sharing nnUNet_raw), then the same command with --merge. The dataset appears only when complete.
dataset.json records the provenance (teacher folder, checkpoint sha256, folds, nnU-Net version,
mode, margin, date); pseudolabel_quality.csv/.json report per case the predicted volume, the share of
probability inside the box, the mean confidence and flags (empty, outside_box)."""

EXAMPLES = """\
examples:
  nnunet_ts pseudolabel --teacher $nnUNet_results/Dataset501_LungTeacher/BoxTeacherTrainer__nnUNetPlans__3d_fullres \\
      --folds 0 1 2 3 4 --weak 503 --strong 502 -d 504 -n LungPseudo
  # four machines, then the merge
  nnunet_ts pseudolabel ... --num-parts 4 --part-id 2
  nnunet_ts pseudolabel ... --num-parts 4 --merge
  nnUNetv2_plan_and_preprocess -d 504 -c 3d_fullres && nnunet_ts soft-targets -d 504 -c 3d_fullres"""


def register(subparsers, name: str, help_text: str) -> None:
    from nnunet_ts.pseudolabel.quality import FLAGS

    p = subparsers.add_parser(name, help=help_text, description=DESCRIPTION, epilog=EXAMPLES,
                              formatter_class=HelpFormatter)
    p.add_argument("--teacher", required=True, type=Path, metavar="DIR",
                   help="trained teacher model folder (nnUNet_results/DatasetXXX/<Trainer>__<Plans>__<config>)")
    p.add_argument("-f", "--folds", nargs="+", default=["0"], help="teacher folds to average ('all' or numbers)")
    p.add_argument("-chk", "--checkpoint", default="checkpoint_final.pth", help="checkpoint file per fold")
    p.add_argument("--weak", required=True, metavar="ID|DIR",
                   help="weak dataset (CT + segbox, no masks): id in nnUNet_raw or a folder")
    p.add_argument("--strong", required=True, metavar="ID|DIR",
                   help="dataset with the strong cases (CT + masks): id in nnUNet_raw or a folder")
    p.add_argument("-d", "--dataset-id", required=True, type=dataset_id, help="id of the student dataset to write")
    p.add_argument("-n", "--name", required=True, help="name of the student dataset (DatasetXXX_<name>)")
    p.add_argument("--mode", choices=("roi", "full"), default="roi", help="predict around the boxes or everywhere")
    p.add_argument("--margin-mm", type=non_negative, default=20.0, help="ROI margin around each box (mm)")
    p.add_argument("--mirroring", action="store_true", help="test-time mirroring (8 passes per patch in 3D)")
    p.add_argument("-step_size", "--step-size", type=fraction, default=0.5,
                   help="sliding-window step, fraction of the patch")
    p.add_argument("-device", "--device", choices=("cpu", "cuda"), default="cuda", help="where the teacher runs")
    p.add_argument("--allow-empty-boxes", action="store_true",
                   help="weak scans with an empty segbox get an all-background soft target instead of an error")
    p.add_argument("--exclude-flagged", nargs="*", choices=FLAGS, default=None, metavar="FLAG",
                   help=f"leave out cases with these quality flags ({', '.join(FLAGS)}; none given: all)")
    p.add_argument("--min-mass-in-box", type=fraction, default=0.5,
                   help="flag outside_box when less of the probability mass lies in the box")
    p.add_argument("--num-parts", type=positive_int, default=1, help="shards in all")
    p.add_argument("--part-id", type=non_negative_int, default=0, help="this shard (0 .. num-parts - 1)")
    p.add_argument("--merge", action="store_true", help="only merge finished shards into the dataset")
    p.add_argument("--raw", type=Path, default=None, help="nnUNet_raw folder (default: $nnUNet_raw)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing dataset with this id (and restart a run with other settings)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from nnunet_ts.errors import InputError
    from nnunet_ts.nnunet.paths import env_root
    from nnunet_ts.pseudolabel.quality import FLAGS, QualitySettings
    from nnunet_ts.pseudolabel.run import PseudoLabelJob, merge, run_pseudolabel
    from nnunet_ts.pseudolabel.teacher import TeacherSpec

    if args.part_id >= args.num_parts:
        raise InputError(f"--part-id {args.part_id} must be below --num-parts {args.num_parts}")
    raw = env_root("nnUNet_raw", args.raw)
    exclude = () if args.exclude_flagged is None else tuple(args.exclude_flagged or FLAGS)
    job = PseudoLabelJob(
        teacher=TeacherSpec(args.teacher, tuple(args.folds), args.checkpoint, args.mirroring,
                            args.step_size, args.device),
        weak_dataset=_dataset(raw, args.weak, "--weak"), strong_dataset=_dataset(raw, args.strong, "--strong"),
        dataset_id=args.dataset_id, name=args.name, raw_root=raw, mode=args.mode,
        margin_mm=args.margin_mm, allow_empty_boxes=args.allow_empty_boxes, exclude_flags=exclude,
        quality=QualitySettings(min_mass_in_box=args.min_mass_in_box))
    if args.merge:
        target = merge(job, overwrite=args.overwrite)
    else:
        with tqdm(desc=f"pseudolabel part {args.part_id + 1}/{args.num_parts}", unit="case") as bar:
            def progress(done: int, total: int) -> None:
                bar.total = total
                bar.n = done
                bar.refresh()

            target = run_pseudolabel(job, num_parts=args.num_parts, part_id=args.part_id,
                                     overwrite=args.overwrite, progress=progress)
    if target is None:
        print(f"part {args.part_id + 1} of {args.num_parts} done; when every part is done, rerun with --merge")
    else:
        print(f"wrote {target} (quality report: {target / 'pseudolabel_quality.csv'})")
    return 0


def _dataset(raw: Path, given: str, option: str) -> Path:
    from nnunet_ts.errors import InputError
    from nnunet_ts.nnunet.paths import folders_with_id

    if Path(given).is_dir():
        return Path(given)
    try:
        number = dataset_id(given)
    except argparse.ArgumentTypeError:
        raise InputError(f"{option} {given}: neither a folder nor a dataset id") from None
    found = folders_with_id(raw, number)
    if not found:
        raise InputError(f"{option} {given}: no Dataset{number:03d}_* in {raw}; check the id or nnUNet_raw")
    return found[0]
