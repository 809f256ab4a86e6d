"""nnU-Net's default trainer on small fixed budgets, for CPUs, tests, CI and demos.

* ``TinyBudgetTrainer``: 2 epochs of 4 iterations, seconds on a tiny configuration. Checks that a
  dataset, its plans and nnU-Net's lookup of our trainers work end to end.
* ``ShortBudgetTrainer``: 25 epochs of 20 iterations, a few minutes on a CPU with ``3d_tiny``; long
  enough for a network to learn the synthetic tumours, far from a converged model.

Both switch mirroring off for training and inference: at validation it costs 8 passes per patch.
"""
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from nnunet_ts.nnunet.trainer_mixins import FixedBudgetMixin, NoMirroringMixin, OneDNNSinglePatchMixin


class TinyBudgetTrainer(FixedBudgetMixin, NoMirroringMixin, OneDNNSinglePatchMixin, nnUNetTrainer):
    budget = (2, 4, 2)


class ShortBudgetTrainer(FixedBudgetMixin, NoMirroringMixin, OneDNNSinglePatchMixin, nnUNetTrainer):
    budget = (25, 20, 5)
