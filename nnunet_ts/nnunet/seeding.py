"""Seeding a training (the ``seed`` training setting), so that a run can be repeated.

:func:`seed_training` seeds the three generators a training of nnunetv2 2.8 draws from: Python's
``random``, numpy's global generator (nnU-Net's ``nnUNetDataLoader`` picks cases and patch centres
with it) and torch's (network initialisation, batchgeneratorsv2's augmentations, dropout; also every
CUDA device). ``SettingsFromPlansMixin`` calls it at the end of the trainer's ``__init__``, before
``initialize()`` builds the network.

What repeats and what does not:

* CPU with ``nnUNet_n_proc_DA=0`` (``nnunet_ts env`` and the demo set it on a CPU): augmentation runs in
  the training process (nnU-Net's ``SingleThreadedAugmenter``); weights, batches and augmentations
  repeat, so a training repeats its losses to the last digit on the same machine, torch build and
  thread count (a different thread count may change the order of floating-point sums).
* With augmentation workers (``nnUNet_n_proc_DA`` > 0, nnU-Net's default on a GPU): not repeatable.
  nnU-Net starts its ``NonDetMultiThreadedAugmenter`` with ``seeds=None`` inside
  ``nnUNetTrainer.get_dataloaders`` (each worker seeds itself from the OS) and takes batches from
  whichever worker is ready first; changing that would mean copying that method.
* GPU: cuDNN picks its algorithms by benchmark and some CUDA kernels use atomics, so even with
  ``nnUNet_n_proc_DA=0`` results vary slightly; the seed still fixes the initial weights.
* A training resumed with ``--c`` restores weights and optimiser, not the generators' states: it is
  a valid training but not the same one as an uninterrupted run.
"""
from __future__ import annotations

import random

import numpy as np
import torch


def seed_training(seed: int) -> None:
    """Seed ``random``, numpy's global generator and torch (CPU and every CUDA device) with ``seed``.

    Raises:
        ValueError: ``seed`` is not an integer from 0 to 2^32 - 1 (numpy's range).
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2 ** 32:
        raise ValueError(f"a training seed is an integer from 0 to 2^32 - 1, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # seeds every CUDA device too
