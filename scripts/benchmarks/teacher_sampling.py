"""How often does a teacher training patch show a box? nnU-Net's sampling vs BoxTeacherTrainer's.

A patch without a box teaches the teacher only "no box, no tumour"; the mask is learnt from patches
with a box in view. This script builds a small synthetic teacher dataset (planned with
``nnunet_ts plan-teacher``), then draws patches with nnU-Net's own data loader under each sampling
rule, side by side in one run, and prints per rule:

  box in view   share of patches with any segbox voxel (of patches from cases that have a tumour)
  box voxels    mean share of the patch covered by the segbox
  tumour whole  share of box-in-view patches holding the whole tumour component they show

Rules: nnU-Net's default (33 %, by batch position: with batch 2 the second sample is forced onto
foreground), random crops only (0 %), and BoxTeacherTrainer's 90 % per sample.

The dataset is made with the stock commands (``CommandRunner``: printed on stderr, output in the
temporary folder's ``logs/``, the last lines shown on failure).

Run time: not recorded; a few minutes on 2 cores with the defaults (estimate), longer with a larger
``--shape``.

    python scripts/benchmarks/teacher_sampling.py [--cases 20] [--patches 400] [--patch 32 64 64] [--shape 96 256 256]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

RULES = (("nnU-Net default (0.33, by position)", 0.33, False),
         ("random crops only (0.0)", 0.0, False),
         ("BoxTeacherTrainer (0.9, per sample)", 0.9, True))


def build_dataset(root: Path, n_cases: int, seed: int, shape: list[int] | None) -> Path:
    from nnunet_ts.nnunet.stock_commands import CommandRunner, dataset_folder, nnunet_environment, quoted

    runner = CommandRunner(nnunet_environment(root, num_processes=2), root / "logs",
                           echo=lambda line: print(line, file=sys.stderr, flush=True))
    shape_option = f" --shape {' '.join(map(str, shape))}" if shape else ""
    runner.run(f"nnunet_ts synth {quoted(root / 'cases')} --n-strong {n_cases} --n-weak 0 --n-test 0 "
               f"--seed {seed}{shape_option}", "synth")
    runner.run(f"nnunet_ts dataset teacher --cases {quoted(root / 'cases')} -d 701 -n SamplingBench", "dataset")
    runner.run("nnunet_ts plan-teacher -d 701 -np 2", "plan_teacher")
    return dataset_folder(root / "nnUNet_preprocessed", 701) / "nnUNetPlans_3d_fullres"


def measure(folder: Path, patch: list[int], oversample: float, probabilistic: bool, n_patches: int,
            seed: int) -> dict[str, float]:
    from nnunetv2.training.dataloading.data_loader import nnUNetDataLoader
    from nnunetv2.training.dataloading.nnunet_dataset import infer_dataset_class
    from nnunetv2.utilities.label_handling.label_handling import LabelManager
    from scipy import ndimage

    dataset_class = infer_dataset_class(str(folder))
    identifiers = dataset_class.get_identifiers(str(folder))
    dataset = dataset_class(str(folder), identifiers)
    with_tumour = [i for i in identifiers if np.asarray(dataset.load_case(i)[1]).max() > 0]
    dataset = dataset_class(str(folder), with_tumour)
    labels = LabelManager({"background": 0, "tumour": 1}, regions_class_order=None)
    loader = nnUNetDataLoader(dataset, 2, patch, patch, labels, oversample_foreground_percent=oversample,
                              probabilistic_oversampling=probabilistic)
    np.random.seed(seed)
    in_view, box_share, whole = [], [], []
    for _ in range(n_patches // 2):
        batch = loader.generate_train_batch()
        for data, seg in zip(batch["data"].numpy(), batch["target"].numpy(), strict=True):
            box = data[1] > 0.5
            in_view.append(box.any())
            box_share.append(box.mean())
            if box.any() and (seg[0] > 0).any():
                # a tumour component cut by the patch border is seen only in part
                components, n = ndimage.label(seg[0] > 0)
                border = set(np.unique(np.concatenate([
                    components[[0, -1]].ravel(), components[:, [0, -1]].ravel(),
                    components[:, :, [0, -1]].ravel()]))) - {0}
                whole.append(len(border) < n)
    return {"box in view": float(np.mean(in_view)), "box voxels": float(np.mean(box_share)),
            "tumour whole": float(np.mean(whole)) if whole else float("nan"),
            "cases": len(with_tumour)}


def median_shape(folder: Path) -> list[int]:
    from nnunetv2.training.dataloading.nnunet_dataset import infer_dataset_class

    dataset_class = infer_dataset_class(str(folder))
    dataset = dataset_class(str(folder), dataset_class.get_identifiers(str(folder)))
    shapes = [dataset.load_case(i)[0].shape[1:] for i in dataset.identifiers]
    return [int(v) for v in np.median(np.array(shapes), axis=0)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=20)
    ap.add_argument("--patches", type=int, default=400)
    ap.add_argument("--patch", type=int, nargs=3, action="append", metavar=("Z", "Y", "X"),
                    help="patch size(s) to measure (default: 32 64 64 and 48 96 96)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--shape", type=int, nargs=3, metavar=("Z", "Y", "X"),
                    help="synthetic CT shape (compact preset: the same thorax on more voxels makes a "
                         "patch cover less of it, as on clinical scans); default 64 128 128")
    args = ap.parse_args()
    patches = args.patch or [[32, 64, 64], [48, 96, 96]]
    with tempfile.TemporaryDirectory() as tmp:
        folder = build_dataset(Path(tmp), args.cases, args.seed, args.shape)
        print(f"{args.cases} synthetic teacher cases (preprocessed shape (z, y, x) median "
              f"{median_shape(folder)}); {args.patches} patches per rule")
        print("| patch (z, y, x) | sampling rule | box in view | box voxels | tumour whole |")
        print("|---|---|---|---|---|")
        for patch in patches:
            for name, oversample, probabilistic in RULES:
                r = measure(folder, patch, oversample, probabilistic, args.patches, args.seed)
                print(f"| {patch} | {name} | {100 * r['box in view']:.0f} % | "
                      f"{100 * r['box voxels']:.2f} % | {100 * r['tumour whole']:.0f} % |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
