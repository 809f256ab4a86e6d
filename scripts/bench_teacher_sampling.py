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

    python scripts/bench_teacher_sampling.py [--cases 20] [--patches 400] [--patch 32 64 64] [--shape 96 256 256]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

RULES = (("nnU-Net default (0.33, by position)", 0.33, False),
         ("random crops only (0.0)", 0.0, False),
         ("BoxTeacherTrainer (0.9, per sample)", 0.9, True))


def build_dataset(root: Path, n_cases: int, seed: int, shape: list[int] | None) -> Path:
    env = dict(os.environ, **{v: str(root / v) for v in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")})
    env.pop("nnUNet_n_proc_DA", None)
    bin_dir = Path(sys.executable).parent
    for cmd in ([f"{bin_dir}/nnunet_ts", "synth", str(root / "cases"), "--n-strong", str(n_cases),
                 "--n-weak", "0", "--n-test", "0", "--seed", str(seed),
                 *(["--shape", *map(str, shape)] if shape else [])],
                [f"{bin_dir}/nnunet_ts", "dataset", "teacher", "--cases", str(root / "cases"), "-d", "701",
                 "-n", "SamplingBench"],
                [f"{bin_dir}/nnunet_ts", "plan-teacher", "-d", "701", "-np", "2"]):
        subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
    return next((root / "nnUNet_preprocessed").glob("Dataset701_*/nnUNetPlans_3d_fullres"))


def measure(folder: Path, patch: list[int], oversample: float, probabilistic: bool, n_patches: int,
            seed: int) -> dict[str, float]:
    from scipy import ndimage

    from nnunetv2.training.dataloading.data_loader import nnUNetDataLoader
    from nnunetv2.training.dataloading.nnunet_dataset import infer_dataset_class
    from nnunetv2.utilities.label_handling.label_handling import LabelManager

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
        for data, seg in zip(batch["data"].numpy(), batch["target"].numpy()):
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
        print(f"| patch (z, y, x) | sampling rule | box in view | box voxels | tumour whole |")
        print("|---|---|---|---|---|")
        for patch in patches:
            for name, oversample, probabilistic in RULES:
                r = measure(folder, patch, oversample, probabilistic, args.patches, args.seed)
                print(f"| {patch} | {name} | {100 * r['box in view']:.0f} % | "
                      f"{100 * r['box voxels']:.2f} % | {100 * r['tumour whole']:.0f} % |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
