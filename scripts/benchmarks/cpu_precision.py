"""Benchmark bf16 against float32 on the CPU: nnU-Net's own training loop and sliding-window tiles.

Targets on a CPU with native bf16 (AVX512-BF16 or AMX): the training loop >= 2.0x faster and
prediction >= 2.0x faster per tile (nnU-Net's sliding window) in bf16 on ``3d_tiny``.

One run builds ``student.py``'s synthetic dataset (spheres in noise, planned with stock nnU-Net, the tiny
CPU configuration added) and measures ``BaselineTrainer`` (nnU-Net's trainer with our settings and CPU
speed-ups) in both precisions (``NNUNET_TS_PRECISION``; ``nnunet_ts.nnunet.cpu_precision``), for each
``--configuration``:

* **training loop**: ``nnUNetv2_train`` itself, ``--epochs`` epochs of ``--iterations`` iterations (and 2
  validation iterations), augmentation in the training process (``nnUNet_n_proc_DA=0``, as the demo on
  CPUs); seconds per iteration = median epoch time (nnU-Net's "Epoch time" log lines, first epoch left
  out) / iterations, so loading, augmentation, validation, logging and checkpoints are all in it. The
  two precisions run alternately, ``--rounds`` trainings each.
* **where the time goes**, in this process with the same trainers: one batch from the training loader
  (loading + augmentation), one ``train_step`` (forward, loss, backward, SGD step), one validation step,
  interleaved round by round.
* **prediction, per tile**: nnU-Net's own sliding-window prediction
  (``nnUNetPredictor.predict_sliding_window_return_logits``, Gaussian weighting, no mirroring) of a
  volume twice the patch along each axis (27 tiles at nnU-Net's step 0.5), seconds / tiles: what a
  prediction or pseudo-label pays per tile. The target is measured here.
* **prediction tile**: one forward pass of one patch (batch 1) in inference mode right after a training
  step (the weights just changed; oneDNN for single patches in both precisions: ``cpu_conv``), and
  the largest difference between the two precisions' softmax outputs.
* as a reference for the per-part timings, float32 with the bf16 path's channels-last layout alone
  (the float32 path itself keeps PyTorch's default layout).

Wall-clock seconds throughout (a training loop is what a user waits for); the machine is shared, so
each figure is a median of interleaved measurements. Nothing is asserted: timings belong here, not in
unit tests.

Run time: about 15 minutes on 2 cores with the defaults, nearly all of it the 3d_fullres trainings.

Usage::

    python scripts/benchmarks/cpu_precision.py [--configuration 3d_tiny 3d_fullres] [--rounds 2]
        [--epochs 4] [--iterations 10] [--keep DIR]
"""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent))
import student  # noqa: E402  (this folder's student.py: dataset, plans, trainer set-up)

PRECISIONS = ("fp32", "bf16")
LAYOUT_ONLY = "fp32+channels_last"  # measured in the per-part timings only
TARGET = 2.0
EPOCH_TIME = re.compile(r"Epoch time: ([0-9.]+) s")


def _budget_configuration(root: Path, source: str, epochs: int, iterations: int) -> str:
    from nnunet_ts.planners.training_settings import TrainingSettings, add_training_configuration

    plans = root / "nnUNet_preprocessed" / f"Dataset{student.DATASET_ID}_{student.NAME}" / "nnUNetPlans.json"
    name = f"bench_{source}"
    add_training_configuration(plans, name, source, TrainingSettings(
        budget=(epochs, iterations, 2), mirroring=False, final_validation="never"), overwrite=True)
    return name


def _train_seconds_per_iteration(root: Path, configuration: str, precision: str, iterations: int) -> float:
    from nnunet_ts.nnunet.stock_commands import nnunet_environment

    env = nnunet_environment(root, "cpu")
    env["NNUNET_TS_PRECISION"] = precision
    results = root / "nnUNet_results"
    subprocess.run(["rm", "-rf", str(results)], check=True)
    subprocess.run(["nnUNetv2_train", str(student.DATASET_ID), configuration, "0", "-tr", "BaselineTrainer",
                    "-device", "cpu"], env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    log = next(results.rglob("training_log_*.txt")).read_text()
    epochs = [float(t) for t in EPOCH_TIME.findall(log)]
    return statistics.median(epochs[1:] or epochs) / iterations


def _trainer(configuration: str, precision: str, root: Path):
    import torch

    from nnunet_ts.trainers.baseline_trainers import BaselineTrainer

    os.environ["NNUNET_TS_PRECISION"] = precision.split("+")[0]  # read when the trainer builds its network
    trainer = student._trainer(BaselineTrainer, root, configuration, torch.device("cpu"))
    trainer.dataloader_train, trainer.dataloader_val = trainer.get_dataloaders()
    if precision == LAYOUT_ONLY:  # the bf16 path's channels-last layout alone, in float32 (a reference)
        trainer.network.to(memory_format=torch.channels_last_3d)
        trainer.network.register_forward_pre_hook(
            lambda module, args: (args[0].contiguous(memory_format=torch.channels_last_3d), *args[1:]))
    return trainer


def _clocked(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _parts(trainer, rounds: int) -> dict[str, float]:
    """Median seconds of one loader batch, one train_step, one validation step, one prediction tile."""
    import torch

    batch = next(trainer.dataloader_train)
    val_batch = next(trainer.dataloader_val)
    tile = torch.randn(1, 1, *trainer.configuration_manager.patch_size)
    times = {"loader batch": [], "train_step": [], "validation step": [], "prediction tile": []}
    for _ in range(rounds):
        trainer.network.train()
        times["loader batch"].append(_clocked(lambda: next(trainer.dataloader_train)))
        times["train_step"].append(_clocked(lambda: trainer.train_step(batch)))
        trainer.network.eval()
        times["validation step"].append(_clocked(lambda: trainer.validation_step(val_batch)))
        trainer.set_deep_supervision_enabled(False)
        with torch.inference_mode():
            times["prediction tile"].append(_clocked(lambda: trainer.network(tile)))
        trainer.set_deep_supervision_enabled(True)
    return {k: statistics.median(v) for k, v in times.items()}


def _sliding_window_seconds_per_tile(trainer) -> float:
    """Seconds per tile of nnU-Net's sliding-window prediction of a volume twice the patch per axis."""
    import numpy as np
    import torch
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
    from nnunetv2.inference.sliding_window_prediction import compute_steps_for_sliding_window

    cm = trainer.configuration_manager
    shape = [2 * p for p in cm.patch_size]
    tiles = int(np.prod([len(s) for s in compute_steps_for_sliding_window(shape, cm.patch_size, 0.5)]))
    predictor = nnUNetPredictor(tile_step_size=0.5, use_gaussian=True, use_mirroring=False,
                                perform_everything_on_device=False, device=torch.device("cpu"), allow_tqdm=False,
                                verbose=False)
    trainer.network.eval()
    trainer.set_deep_supervision_enabled(False)
    predictor.manual_initialization(trainer.network, trainer.plans_manager, cm, [], trainer.dataset_json,
                                    type(trainer).__name__, None)
    volume = torch.randn(1, *shape)
    try:
        return _clocked(lambda: predictor.predict_sliding_window_return_logits(volume)) / tiles
    finally:
        trainer.set_deep_supervision_enabled(True)


def _tile_difference(trainers: dict) -> float:
    import torch

    torch.manual_seed(0)
    tile = torch.randn(1, 1, *trainers["fp32"].configuration_manager.patch_size)
    trainers["bf16"].network.load_state_dict(trainers["fp32"].network.state_dict())
    outputs = []
    for precision in PRECISIONS:
        trainer = trainers[precision]
        trainer.network.eval()
        trainer.set_deep_supervision_enabled(False)
        with torch.inference_mode():
            outputs.append(torch.softmax(trainer.network(tile), 1))
        trainer.set_deep_supervision_enabled(True)
    return float((outputs[0] - outputs[1]).abs().max())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configuration", nargs="+", default=["3d_tiny", "3d_fullres"],
                        help="3d_tiny (8..64 features, patch 32x64x64) and/or 3d_fullres (nnU-Net's plan)")
    parser.add_argument("--rounds", type=int, default=2, help="trainings per precision (interleaved)")
    parser.add_argument("--epochs", type=int, default=4, help="epochs per training (the first is not counted)")
    parser.add_argument("--iterations", type=int, default=10, help="training iterations per epoch")
    parser.add_argument("--part-rounds", type=int, default=5, help="interleaved rounds of the per-part timings")
    parser.add_argument("--keep", type=Path, default=None, help="work in this folder and keep it")
    args = parser.parse_args()

    import torch

    from nnunet_ts.nnunet.cpu_precision import cpu_has_native_bf16

    with tempfile.TemporaryDirectory() as tmp:
        root = (args.keep or Path(tmp)).resolve()
        for v in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
            os.environ[v] = str(root / v)
            (root / v).mkdir(parents=True, exist_ok=True)
        os.environ["nnUNet_n_proc_DA"] = "0"
        os.environ["nnUNet_compile"] = "false"
        data = SimpleNamespace(strong=4, pseudo=12, shape=(48, 96, 96), configuration="3d_tiny")
        if not (root / "nnUNet_preprocessed" / f"Dataset{student.DATASET_ID}_{student.NAME}" /
                "nnUNetPlans.json").is_file():
            print("preparing the dataset (16 cases of 48x96x96 voxels) ...")
            student._prepare(root, data)
        print(f"CPU: native bf16 {cpu_has_native_bf16()}, {torch.get_num_threads()} threads, torch {torch.__version__}")
        for source in args.configuration:
            configuration = _budget_configuration(root, source, args.epochs, args.iterations)
            loop = {p: [] for p in PRECISIONS}
            for r in range(args.rounds):
                for precision in PRECISIONS if r % 2 == 0 else PRECISIONS[::-1]:
                    loop[precision].append(_train_seconds_per_iteration(root, configuration, precision,
                                                                        args.iterations))
            variants = (*PRECISIONS, LAYOUT_ONLY)
            trainers = {p: _trainer(configuration, p, root) for p in variants}
            collected = {p: [] for p in variants}
            sliding = {p: [] for p in PRECISIONS}
            for precision in PRECISIONS:  # the first prediction of each network: set-up, not timed
                _sliding_window_seconds_per_tile(trainers[precision])
            for r in range(args.part_rounds):
                for precision in variants if r % 2 == 0 else variants[::-1]:
                    collected[precision].append(_parts(trainers[precision], 1))
                for precision in PRECISIONS if r % 2 == 0 else PRECISIONS[::-1]:
                    sliding[precision].append(_sliding_window_seconds_per_tile(trainers[precision]))
            parts = {p: {k: statistics.median(c[k] for c in collected[p]) for k in collected[p][0]}
                     for p in variants}
            cm = trainers["fp32"].configuration_manager
            print(f"\n{source}: patch {cm.patch_size}, batch {cm.batch_size}, features "
                  f"{cm.network_arch_init_kwargs['features_per_stage']}")
            print(f"{'seconds':28s}{'fp32':>10s}{'bf16':>10s}{'fp32/bf16':>11s}   {'fp32 channels-last':>18s}")
            rows = [("training loop, per iteration", statistics.median(loop["fp32"]), statistics.median(loop["bf16"]))]
            rows += [(k, parts["fp32"][k], parts["bf16"][k]) for k in parts["fp32"]]
            rows.append(("prediction, per tile", statistics.median(sliding["fp32"]),
                         statistics.median(sliding["bf16"])))
            for name, a, b in rows:
                layout = f"{parts[LAYOUT_ONLY][name]:18.3f}" if name in parts[LAYOUT_ONLY] else f"{'':18s}"
                print(f"{name:28s}{a:10.3f}{b:10.3f}{a / b:10.2f}x   {layout}")
            print(f"  trainings (s/iteration) fp32 {[round(x, 3) for x in loop['fp32']]}, "
                  f"bf16 {[round(x, 3) for x in loop['bf16']]}")
            print(f"  largest softmax difference on one tile (same weights): {_tile_difference(trainers):.4f}")
            print(f"  prediction per tile (s) fp32 {[round(x, 4) for x in sliding['fp32']]}, "
                  f"bf16 {[round(x, 4) for x in sliding['bf16']]}")
            speed = rows[0][1] / rows[0][2], rows[-1][1] / rows[-1][2]
            print(f"  targets (>= {TARGET}x): training loop {speed[0]:.2f}x "
                  f"{'met' if speed[0] >= TARGET else 'NOT met'}, prediction per tile {speed[1]:.2f}x "
                  f"{'met' if speed[1] >= TARGET else 'NOT met'}")
            print(json.dumps({"configuration": source, "loop": loop, "parts": parts, "prediction_per_tile": sliding}))


if __name__ == "__main__":
    main()
