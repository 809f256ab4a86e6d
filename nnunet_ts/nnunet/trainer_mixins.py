"""Hooks shared by our trainers (in ``trainers/``); each overrides nnU-Net trainer hooks (nnunetv2 2.8).

They live in the library, not in ``trainers/``: nnU-Net imports every module of that folder under its
bare file name, so it holds trainer modules only.
"""
import torch

from nnunet_ts.errors import InputError
from nnunet_ts.nnunet.cpu_conv import use_onednn_for_single_patches
from nnunet_ts.nnunet.cpu_precision import resolve_cpu_precision, with_cpu_precision
from nnunet_ts.nnunet.seeding import seed_training
from nnunet_ts.planners.training_settings import TrainingSettings, training_settings


class SettingsFromPlansMixin:
    """Applies the configuration's training settings (``planners.training_settings``) to nnU-Net's trainer.

    ``settings_defaults`` are the trainer's own defaults for keys the configuration leaves out; the
    result is ``self.settings``. Hooks used, each as nnU-Net's ``nnUNetTrainer`` defines it:

    * ``__init__``: ``num_epochs``, ``num_iterations_per_epoch``, ``num_val_iterations_per_epoch`` from
      the budget (and a checkpoint at least every quarter of it, so an interrupted short training
      continues with ``nnUNetv2_train ... --c``); ``oversample_foreground_percent`` with per-sample
      (``probabilistic_oversampling``) draws from ``foreground_sampling``;
    * ``configure_rotation_dummyDA_mirroring_and_inital_patch_size``: no mirror axes, for training and
      for the predictor (``inference_allowed_mirroring_axes``), when ``mirroring`` is off;
    * ``_set_batch_size_and_oversample`` (nnU-Net's DDP split of the batch): the per-sample foreground
      rate stays the configured one on every rank;
    * ``perform_actual_validation``: skipped as ``final_validation`` says.

    The Dice smooth is the loss's business: each trainer's ``_build_loss`` reads ``self.settings``.
    """

    settings_defaults = TrainingSettings()

    # The exact signature of nnUNetTrainer.__init__: nnU-Net records it to rebuild the trainer.
    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        where = (f"configuration {configuration!r} of {self.plans_manager.plans_name} "
                 f"({self.plans_manager.dataset_name})")
        self.settings = training_settings(self.configuration_manager.configuration, where).over(self.settings_defaults)
        if self.settings.budget is not None:
            self.num_epochs, self.num_iterations_per_epoch, self.num_val_iterations_per_epoch = self.settings.budget
            self.save_every = max(1, min(self.save_every, self.num_epochs // 4))
        if self.settings.foreground_sampling is not None:
            self.oversample_foreground_percent = self.settings.foreground_sampling
            self.probabilistic_oversampling = True
        self.print_to_log_file(f"nnunet_ts settings of {where}: {self.settings}")
        if self.device.type == "cpu":
            self.print_to_log_file(f"CPU forward passes in {resolve_cpu_precision(self.settings.cpu_precision)[1]}")
        # --- training seed (nnunet_ts.nnunet.seeding): before initialize() builds the network
        if self.settings.seed is not None:
            seed_training(self.settings.seed)

    def _set_batch_size_and_oversample(self):
        super()._set_batch_size_and_oversample()
        # Under DDP nnU-Net splits the batch over ranks and turns the foreground rate into a per-rank
        # rate for its deterministic rule "the last XX % of the batch is foreground" (0.9 of a batch of
        # 2 on 2 ranks: rank 0 gets 0.0, rank 1 gets 1.0). Our sampling draws per sample
        # (probabilistic_oversampling), which needs no split: every rank draws at the configured rate.
        if self.settings.foreground_sampling is not None:
            self.oversample_foreground_percent = self.settings.foreground_sampling

    def configure_rotation_dummyDA_mirroring_and_inital_patch_size(self):
        rotation, dummy_2d, initial_patch_size, mirror_axes = \
            super().configure_rotation_dummyDA_mirroring_and_inital_patch_size()
        if self.settings.mirroring:
            return rotation, dummy_2d, initial_patch_size, mirror_axes
        self.inference_allowed_mirroring_axes = None
        return rotation, dummy_2d, initial_patch_size, None

    def perform_actual_validation(self, save_probabilities: bool = False):
        rule = self.settings.final_validation
        if rule == "never" or (rule == "except_fold_all" and self.fold == "all"):
            self.print_to_log_file(f"final validation skipped (final_validation {rule!r}"
                                   f"{': fold all validates on its training cases' if self.fold == 'all' else ''})")
            return
        super().perform_actual_validation(save_probabilities)


NNUNET_DICE_SMOOTH = 1e-5  # MemoryEfficientSoftDiceLoss's smooth in nnUNetTrainer._build_loss


class DiceSmoothMixin:
    """nnU-Net's Dice + CE loss with the Dice smooth of the setting ``dice_smooth`` (after
    ``SettingsFromPlansMixin``): nnU-Net's 1e-5 (``nnUNetTrainer._build_loss``) or 0
    (``nnUNetTrainerDiceCELoss_noSmooth._build_loss``, run as is: it does not call ``super``)."""

    def _build_loss(self):
        from nnunetv2.training.nnUNetTrainer.variants.loss.nnUNetTrainerDiceLoss import (
            nnUNetTrainerDiceCELoss_noSmooth,
        )

        smooth = self.settings.dice_smooth
        if smooth is None or smooth == NNUNET_DICE_SMOOTH:
            return super()._build_loss()
        if smooth == 0:
            return nnUNetTrainerDiceCELoss_noSmooth._build_loss(self)
        raise InputError(f"{type(self).__name__} trains nnU-Net's Dice with smooth {NNUNET_DICE_SMOOTH:g} or 0, "
                         f"the configuration asks {smooth!r}; rewrite it with `nnunet_ts budget-config "
                         f"--dice-smooth 0 --overwrite`")


class CPUSpeedMixin:
    """The network's CPU forward passes: oneDNN for single patches (``cpu_conv``) and bf16 autocast where
    the CPU runs bf16 natively (``cpu_precision``; setting ``cpu_precision``, ``NNUNET_TS_PRECISION``).

    nnU-Net's predictor feeds one tile per forward pass, where PyTorch's native 3D convolution on small
    networks is several times slower than oneDNN; training batches are unaffected by that part. bf16
    speeds up training, validation and prediction alike. The predictor builds the network through this
    class method too, so ``nnUNetv2_predict -tr ...`` and the pseudo-label step get both.
    """

    # the parameter names matter: nnU-Net's predictor inspects them to choose how to call this
    @classmethod
    def build_network_architecture(cls, plans_manager, configuration_manager, num_input_channels,
                                   num_output_channels, enable_deep_supervision=True):
        return cls.cpu_ready(super().build_network_architecture(
            plans_manager, configuration_manager, num_input_channels, num_output_channels,
            enable_deep_supervision), configuration_manager)

    @staticmethod
    def cpu_ready(network, configuration_manager):
        """``network`` with both CPU speed-ups (a trainer wrapping the U-Net applies this to its wrapper)."""
        setting = training_settings(configuration_manager.configuration, "the configuration").cpu_precision
        return with_cpu_precision(use_onednn_for_single_patches(network), setting)


class RenamedTrainerMixin:
    """A trainer name of an earlier release: building the network works (its checkpoints still
    predict), training says which trainer and configuration replace it.

    ``renamed_to`` is the text of the fix, e.g. ``"BoxTeacherTrainer on a configuration made with
    `nnunet_ts budget-config ... --epochs 2 --iterations 4`"``.
    """

    renamed_to: str = ""

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        raise InputError(f"trainer {type(self).__name__} was replaced: train {self.renamed_to} "
                         f"(budgets, Dice smooth and mirroring are configuration settings now)")


class TrainingPipelineMixin:
    """nnU-Net's training augmentation pipeline, then ``edit_training_pipeline`` (override that instead).

    ``nnUNetTrainer.get_training_transforms`` takes ten parameters; this is the one place that repeats
    them. Trainers edit the returned ``ComposeTransforms`` in ``edit_training_pipeline`` and chain with
    ``super()``, so the pipelines of teacher, student and dual-decoder student stay nnU-Net's own list.
    """

    def get_training_transforms(self, patch_size, rotation_for_DA, deep_supervision_scales, mirror_axes,
                                do_dummy_2d_data_aug, use_mask_for_norm=None, is_cascaded=False,
                                foreground_labels=None, regions=None, ignore_label=None):
        pipeline = super().get_training_transforms(
            patch_size, rotation_for_DA, deep_supervision_scales, mirror_axes, do_dummy_2d_data_aug,
            use_mask_for_norm=use_mask_for_norm, is_cascaded=is_cascaded,
            foreground_labels=foreground_labels, regions=regions, ignore_label=ignore_label)
        return self.edit_training_pipeline(pipeline, deep_supervision_scales, use_mask_for_norm)

    def edit_training_pipeline(self, pipeline, deep_supervision_scales, use_mask_for_norm):
        """Returns the (edited) pipeline; the default keeps nnU-Net's."""
        return pipeline
