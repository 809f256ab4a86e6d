"""TinyBudgetTrainer: nnU-Net's default trainer on a budget of seconds, for tests, CI and smoke runs.

Use it with a tiny configuration (``nnunet_ts tiny-plans``) to check that a dataset, the plans and
the nnU-Net lookup of our trainers work end to end, before spending hours on a real training.
Mirroring is off for training and inference: at validation it would cost 8 passes per patch.
"""
import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer


class TinyBudgetTrainer(nnUNetTrainer):
    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.num_epochs = 2
        self.num_iterations_per_epoch = 4
        self.num_val_iterations_per_epoch = 2

    def configure_rotation_dummyDA_mirroring_and_inital_patch_size(self):
        rotation, dummy_2d, initial_patch_size, _ = \
            super().configure_rotation_dummyDA_mirroring_and_inital_patch_size()
        self.inference_allowed_mirroring_axes = None
        return rotation, dummy_2d, initial_patch_size, None
