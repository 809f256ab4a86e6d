"""nnU-Net's default trainer on small fixed budgets, for CPUs, tests, CI and demos.

* ``TinyBudgetTrainer``: 2 epochs of 4 iterations, seconds on a tiny configuration. Checks that a
  dataset, its plans and nnU-Net's lookup of our trainers work end to end.
* ``ShortBudgetTrainer``: 25 epochs of 20 iterations, a few minutes on a CPU with ``3d_tiny``; long
  enough for a network to learn the synthetic tumours, far from a converged model.

Both switch mirroring off for training and inference: at validation it costs 8 passes per patch.
Settings are plain attributes; subclass to change them.
"""
import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from nnunet_ts.trainers.mixins import NoMirroringMixin


class TinyBudgetTrainer(NoMirroringMixin, nnUNetTrainer):
    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.num_epochs = 2
        self.num_iterations_per_epoch = 4
        self.num_val_iterations_per_epoch = 2


class ShortBudgetTrainer(NoMirroringMixin, nnUNetTrainer):
    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.num_epochs = 25
        self.num_iterations_per_epoch = 20
        self.num_val_iterations_per_epoch = 5
