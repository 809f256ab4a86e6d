"""Hooks shared by our trainers (in ``trainers/``); each mixin overrides one nnU-Net trainer hook.

They live in the library, not in ``trainers/``: nnU-Net imports every module of that folder under its
bare file name, so it holds trainer modules only.
"""
import torch

from nnunet_ts.nnunet.cpu_conv import use_onednn_for_single_patches


class FixedBudgetMixin:
    """Sets nnU-Net's training length from the class attribute ``budget``.

    ``budget = (epochs, training iterations per epoch, validation iterations per epoch)``.
    """

    budget: tuple[int, int, int]

    # The exact signature of nnUNetTrainer.__init__: nnU-Net records it to rebuild the trainer.
    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.num_epochs, self.num_iterations_per_epoch, self.num_val_iterations_per_epoch = self.budget


class NoMirroringMixin:
    """No mirroring augmentation in training and no mirrored passes at inference."""

    def configure_rotation_dummyDA_mirroring_and_inital_patch_size(self):
        rotation, dummy_2d, initial_patch_size, _ = \
            super().configure_rotation_dummyDA_mirroring_and_inital_patch_size()
        self.inference_allowed_mirroring_axes = None
        return rotation, dummy_2d, initial_patch_size, None


class PlansBudgetMixin:
    """Training length from the plans: the configuration's optional ``"nnunet_ts_budget"`` entry.

    ``"nnunet_ts_budget": [epochs, training iterations per epoch, validation iterations per epoch]``;
    without it nnU-Net's defaults stay. Experiments that compare trainers give each configuration one
    budget this way, so every trainer of the comparison trains exactly as long.
    """

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        budget = self.configuration_manager.configuration.get("nnunet_ts_budget")
        if budget is not None:
            self.num_epochs, self.num_iterations_per_epoch, self.num_val_iterations_per_epoch = \
                (int(b) for b in budget)
            # a checkpoint at least every quarter of the budget (nnU-Net: every 50 epochs), so an
            # interrupted short training continues with `nnUNetv2_train ... --c` instead of restarting
            self.save_every = max(1, min(self.save_every, self.num_epochs // 4))


class NoFinalValidationOnFoldAllMixin:
    """Skips nnU-Net's validation at the end of training when the fold is ``all``.

    With fold ``all`` the validation cases are the training cases: predicting them costs minutes on
    a CPU and measures nothing. Experiments evaluate their held-out test set instead.
    """

    def perform_actual_validation(self, save_probabilities: bool = False):
        if self.fold == "all":
            self.print_to_log_file("final validation skipped: fold 'all' validates on its training "
                                   "cases; evaluate a held-out test set instead")
            return
        super().perform_actual_validation(save_probabilities)


class ForegroundSamplingMixin:
    """Patches centred on foreground in ``foreground_sampling`` of the samples (drawn per sample).

    nnU-Net's default is 33 % (per batch). The teachers use 90 %: the paper's teachers see crops
    centred on the tumour.
    """

    foreground_sampling: float = 0.9

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.oversample_foreground_percent = self.foreground_sampling
        self.probabilistic_oversampling = True


class NoFinalValidationMixin:
    """Skips nnU-Net's validation at the end of training, whatever the fold (benchmarks that time
    something else and need no validation)."""

    def perform_actual_validation(self, save_probabilities: bool = False):
        self.print_to_log_file("final validation skipped (NoFinalValidationMixin)")


class OneDNNSinglePatchMixin:
    """The network's 3D convolutions run on oneDNN for single CPU patches (``cpu_conv``).

    nnU-Net's predictor feeds one tile per forward pass, where PyTorch's native 3D convolution on small
    networks is several times slower than oneDNN; training batches are unaffected. The predictor builds
    the network through this class method too, so ``nnUNetv2_predict -tr ...`` and the pseudo-label
    step get it.
    """

    # the parameter names matter: nnU-Net's predictor inspects them to choose how to call this
    @classmethod
    def build_network_architecture(cls, plans_manager, configuration_manager, num_input_channels,
                                   num_output_channels, enable_deep_supervision=True):
        return use_onednn_for_single_patches(super().build_network_architecture(
            plans_manager, configuration_manager, num_input_channels, num_output_channels,
            enable_deep_supervision))
