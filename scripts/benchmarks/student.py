"""Benchmark the soft-label student against nnU-Net's default trainer on the same plans and data.

Targets: ``TeacherStudentTrainer`` takes <= 1.10 x nnU-Net's seconds per training iteration and its data
loader delivers >= 0.9 x nnU-Net's batches per second.

One run builds a synthetic student dataset (strong cases with masks, pseudo cases with soft targets;
spheres in noise, ``--shape`` voxels), plans it with stock nnU-Net, adds the tiny CPU configuration
(or uses ``--configuration``), builds both trainers in this process and measures them side by side,
interleaved round by round (machines are noisy, so each round times both):

* loader: ``--batches`` batches from each trainer's training loader (augmentation in the main process,
  ``nnUNet_n_proc_DA=0``: the cost of loading + augmenting one batch);
* training iteration: ``train_step`` on a batch drawn beforehand (forward, loss, backward, step).

Each round seeds numpy and torch alike for both trainers, so they draw the same cases, patches and
augmentation parameters. By default the clock is this process's CPU time (``--clock cpu``): on a
shared machine, wall time mostly measures the other jobs. Use ``--clock wall`` on an idle machine or
with ``--device cuda``.

Medians of the rounds are compared and the ratios printed. Nothing is asserted: timings belong here,
not in unit tests. ``dual_decoder.py`` (next to this file) reuses its dataset, plans and trainer set-up.

Run time: not recorded; a few minutes on 2 cores with the defaults (estimate: planning and preprocessing
16 small cases, then 5 rounds of 10 batches and 3 iterations per trainer).

Usage::

    python scripts/benchmarks/student.py [--rounds 5] [--batches 10] [--steps 3] [--strong 4] [--pseudo 12]
        [--shape 48 96 96] [--configuration 3d_tiny] [--device cpu] [--keep DIR]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

TIME_TARGET, LOADER_TARGET = 1.10, 0.90
CLOCK = time.process_time  # set by --clock
DATASET_ID, NAME = 990, "BenchStudent"


def _write_cases(folder: Path, n_strong: int, n_pseudo: int, shape: tuple[int, int, int], seed: int = 0):
    """Spheres of tumour-like intensity in lung-like noise; pseudo cases get the blurred sphere as soft target
    and the sphere's segbox as annotated box (used by the dual-decoder student, ignored by the others)."""
    from scipy import ndimage

    from nnunet_ts.boxes.segbox import segbox_from_mask
    from nnunet_ts.datasets.student import StudentCase
    from nnunet_ts.io.images import Geometry, write_image

    rng = np.random.default_rng(seed)
    geometry = Geometry(shape_zyx=shape, spacing=(1.0, 1.0, 1.5), origin=(0.0, 0.0, 0.0),
                        direction=(1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0))
    grid = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    folder.mkdir(parents=True, exist_ok=True)
    cases = []
    for i in range(n_strong + n_pseudo):
        centre = [rng.uniform(0.3, 0.7) * n for n in shape]
        radius = rng.uniform(4, 10)
        mask = sum((g - c) ** 2 for g, c in zip(grid, centre, strict=True)) < radius ** 2
        ct = rng.normal(-800, 40, shape)
        ct[mask] = rng.normal(30, 15, int(mask.sum()))
        ct_path = folder / f"b{i:03d}_ct.nii.gz"
        write_image(ct_path, ct.astype(np.int16), geometry)
        if i < n_strong:
            path = folder / f"b{i:03d}_mask.nii.gz"
            write_image(path, mask.astype(np.uint8), geometry)
            cases.append(StudentCase(f"b{i:03d}", ct_path, "strong", mask=path, patient_id=f"p{i}"))
        else:
            soft = np.clip(ndimage.gaussian_filter(mask.astype(np.float32), 2.0), 0, 1)
            path = folder / f"b{i:03d}_soft.nii.gz"
            write_image(path, soft.astype(np.float32), geometry)
            box = folder / f"b{i:03d}_segbox.nii.gz"
            write_image(box, segbox_from_mask(mask), geometry)
            cases.append(StudentCase(f"b{i:03d}", ct_path, "pseudo", soft_target=path, segbox=box,
                                     patient_id=f"p{i}"))
    return cases


def _prepare(root: Path, args) -> None:
    from nnunetv2.experiment_planning.plan_and_preprocess_api import (
        extract_fingerprints,
        plan_experiment_dataset,
        preprocess_dataset,
    )

    from nnunet_ts.datasets.student import write_student_dataset
    from nnunet_ts.planners.tiny_plans import TinyPlan, add_tiny_configuration

    raw = write_student_dataset(_write_cases(root / "cases", args.strong, args.pseudo, tuple(args.shape)),
                                DATASET_ID, NAME, root / "nnUNet_raw", num_folds=2, overwrite=True)
    extract_fingerprints([DATASET_ID], num_processes=2, check_dataset_integrity=False)
    da = os.environ.pop("nnUNet_n_proc_DA", None)  # nnU-Net 2.8.1's planner fails with 0
    _, plans_identifier = plan_experiment_dataset(DATASET_ID)
    if da is not None:
        os.environ["nnUNet_n_proc_DA"] = da
    preprocess_dataset(DATASET_ID, plans_identifier, configurations=["3d_fullres"], num_processes=[2])
    pre = root / "nnUNet_preprocessed" / raw.name
    (pre / "splits_final.json").write_text((raw / "splits_final.json").read_text())
    if args.configuration == "3d_tiny":
        add_tiny_configuration(pre / "nnUNetPlans.json", TinyPlan(), overwrite=True)


def _trainer(cls, root: Path, configuration: str, device):
    pre = root / "nnUNet_preprocessed" / f"Dataset{DATASET_ID}_{NAME}"
    plans = json.loads((pre / "nnUNetPlans.json").read_text())
    plans["continue_training"] = False
    trainer = cls(plans, configuration, 0, json.loads((pre / "dataset.json").read_text()), device=device)
    trainer.initialize()
    trainer.dataloader_train, _ = trainer.get_dataloaders()
    trainer.network.train()
    return trainer


def _seed(seed: int) -> None:
    """Both trainers draw the same cases, patches and augmentation parameters in a round (the
    student's extra transforms draw no random numbers), so a round compares like with like."""
    import torch

    np.random.seed(seed)
    torch.manual_seed(seed)


def _time_batches(trainer, n: int) -> float:
    start = CLOCK()
    for _ in range(n):
        next(trainer.dataloader_train)
    return (CLOCK() - start) / n


def _time_steps(trainer, n: int) -> float:
    import torch

    times = []
    for _ in range(n):
        batch = next(trainer.dataloader_train)
        if trainer.device.type == "cuda":
            torch.cuda.synchronize()
        start = CLOCK()
        trainer.train_step(batch)
        if trainer.device.type == "cuda":
            torch.cuda.synchronize()
        times.append(CLOCK() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (medians are compared)")
    parser.add_argument("--batches", type=int, default=10, help="loader batches per trainer and round")
    parser.add_argument("--steps", type=int, default=3, help="training iterations per trainer and round")
    parser.add_argument("--strong", type=int, default=4, help="strong cases")
    parser.add_argument("--pseudo", type=int, default=12, help="pseudo cases (soft targets)")
    parser.add_argument("--shape", type=int, nargs=3, default=(48, 96, 96), metavar=("Z", "Y", "X"))
    parser.add_argument("--configuration", default="3d_tiny",
                        help="3d_tiny (added: 8..64 features, patch 32x64x64) or 3d_fullres")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu",
                        help="cpu: CPU seconds of this process (robust when other jobs share the machine); "
                             "wall: elapsed seconds (use on an idle machine and with --device cuda)")
    parser.add_argument("--keep", type=Path, default=None, help="work in this folder and keep it")
    args = parser.parse_args()

    import torch

    global CLOCK
    CLOCK = time.process_time if args.clock == "cpu" else time.perf_counter
    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or Path(tmp)
        for v in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
            os.environ[v] = str(root / v)
            (root / v).mkdir(parents=True, exist_ok=True)
        os.environ["nnUNet_n_proc_DA"] = "0"
        if not (root / "nnUNet_preprocessed" / f"Dataset{DATASET_ID}_{NAME}" / "nnUNetPlans.json").is_file():
            print(f"preparing {args.strong} strong + {args.pseudo} pseudo cases of {tuple(args.shape)} voxels ...")
            _prepare(root, args)

        from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

        from nnunet_ts.trainers.teacher_student_trainers import TeacherStudentTrainer

        device = torch.device(args.device)
        trainers = {"nnUNetTrainer": _trainer(nnUNetTrainer, root, args.configuration, device),
                    "TeacherStudentTrainer": _trainer(TeacherStudentTrainer, root, args.configuration, device)}
        loader = {name: [] for name in trainers}
        step = {name: [] for name in trainers}
        for r in range(args.rounds):
            order = list(trainers) if r % 2 == 0 else list(reversed(trainers))  # alternate who goes first
            for name in order:
                _seed(r)
                loader[name].append(_time_batches(trainers[name], args.batches))
            for name in order:
                _seed(1000 + r)
                step[name].append(_time_steps(trainers[name], args.steps))
        base, ours = "nnUNetTrainer", "TeacherStudentTrainer"
        cm = trainers[ours].configuration_manager
        print(f"\nconfiguration {args.configuration}: patch {cm.patch_size}, batch {cm.batch_size}, device {device}, "
              f"{torch.get_num_threads()} threads, {args.rounds} interleaved rounds (medians), {args.clock} seconds")
        print(f"{'':24s}{'s / iteration':>15s}{'loader batches / s':>20s}")
        for name in (base, ours):
            print(f"{name:24s}{statistics.median(step[name]):15.3f}{1 / statistics.median(loader[name]):20.2f}")
        time_ratio = statistics.median(step[ours]) / statistics.median(step[base])
        loader_ratio = statistics.median(loader[base]) / statistics.median(loader[ours])
        print(f"\ntraining iteration time ratio (student / nnU-Net): {time_ratio:.2f}  "
              f"(target <= {TIME_TARGET:.2f}: {'met' if time_ratio <= TIME_TARGET else 'NOT met'})")
        print(f"loader throughput ratio (student / nnU-Net):     {loader_ratio:.2f}  "
              f"(target >= {LOADER_TARGET:.2f}: {'met' if loader_ratio >= LOADER_TARGET else 'NOT met'})")


if __name__ == "__main__":
    main()
