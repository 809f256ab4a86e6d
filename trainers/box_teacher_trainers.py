"""The box-guided teacher: CT + segbox in, tumour mask out (METHOD, pipeline step 2).

``BoxTeacherTrainer`` is nnU-Net's default trainer with three changes, each in one hook:

* the segbox channel stays a box through augmentation: it travels as ``regression_target`` (moved
  with the CT by the spatial transform and mirroring, skipped by every intensity transform) and is
  thresholded back to 0/1 (``get_training_transforms``); boxes are perturbed as a reader would draw
  them (Sun et al.: scale 0.9-1.2, edges moved by < 1/10 of the side) in half of the samples;
* the network thresholds its segbox input at 0.5 (a forward pre-hook set in
  ``build_network_architecture``), so nnU-Net's spline-resampled boxes at ``nnUNetv2_predict`` time,
  and any preprocessing not done by ``nnunet_ts plan-teacher``, reach it as exact boxes;
* patches are centred on tumour (inside its box) in 90 % of the samples instead of nnU-Net's 33 %
  (``scripts/bench_teacher_sampling.py`` measures how often a box is in view). The remaining 10 %
  show box-free anatomy, so the teacher keeps learning that no box means no tumour.

Variants: ``BoxTeacherExactBoxTrainer`` (no perturbation), and fixed small budgets for tests and the
CPU demo (``BoxTeacherTinyBudgetTrainer``, ``BoxTeacherShortBudgetTrainer``).
"""
from functools import partial

import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from nnunet_ts.boxes.perturbation import BoxPerturbation
from nnunet_ts.errors import InputError
from nnunet_ts.teacher.segbox_channel import SEGBOX_THRESHOLD, segbox_channel_index
from nnunet_ts.teacher.segbox_transforms import RestoreSegboxTransform, StashSegboxTransform
from nnunet_ts.nnunet.trainer_mixins import (FixedBudgetMixin, ForegroundSamplingMixin, NoMirroringMixin,
                                      OneDNNSinglePatchMixin)


def _binarize_segbox_input(module, args, channel: int):
    x = args[0].clone()
    x[:, channel] = (x[:, channel] >= SEGBOX_THRESHOLD).to(x.dtype)
    return (x, *args[1:])


class BoxTeacherTrainer(ForegroundSamplingMixin, OneDNNSinglePatchMixin, nnUNetTrainer):
    segbox_channel = 1  # teacher datasets: _0000 CT, _0001 segbox (checked against dataset.json)
    box_perturbation: BoxPerturbation | None = BoxPerturbation(probability=0.5)
    foreground_sampling = 0.9

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        channel = segbox_channel_index(dataset_json, f"dataset.json of {self.plans_manager.dataset_name}")
        if channel != self.segbox_channel:
            raise InputError(f"dataset.json of {self.plans_manager.dataset_name}: the segbox must be "
                             f"channel {self.segbox_channel} (_000{self.segbox_channel}), found it as "
                             f"channel {channel}; write the dataset with `nnunet_ts dataset teacher`")

    def get_training_transforms(self, patch_size, rotation_for_DA, deep_supervision_scales, mirror_axes,
                                do_dummy_2d_data_aug, use_mask_for_norm=None, is_cascaded=False,
                                foreground_labels=None, regions=None, ignore_label=None):
        pipeline = super().get_training_transforms(
            patch_size, rotation_for_DA, deep_supervision_scales, mirror_axes, do_dummy_2d_data_aug,
            use_mask_for_norm=use_mask_for_norm, is_cascaded=is_cascaded,
            foreground_labels=foreground_labels, regions=regions, ignore_label=ignore_label)
        pipeline.transforms = [StashSegboxTransform(self.segbox_channel, self.box_perturbation),
                               *pipeline.transforms,
                               RestoreSegboxTransform(self.segbox_channel)]
        return pipeline

    @classmethod
    def build_network_architecture(cls, plans_manager, configuration_manager, num_input_channels,
                                   num_output_channels, enable_deep_supervision=True):
        network = super().build_network_architecture(plans_manager, configuration_manager,
                                                      num_input_channels, num_output_channels,
                                                      enable_deep_supervision)
        network.register_forward_pre_hook(partial(_binarize_segbox_input, channel=cls.segbox_channel))
        return network


class BoxTeacherExactBoxTrainer(BoxTeacherTrainer):
    """Trained on the exact boxes only (no perturbation)."""

    box_perturbation = None


class BoxTeacherTinyBudgetTrainer(FixedBudgetMixin, NoMirroringMixin, BoxTeacherTrainer):
    budget = (2, 4, 2)


class BoxTeacherShortBudgetTrainer(FixedBudgetMixin, NoMirroringMixin, BoxTeacherTrainer):
    budget = (25, 20, 5)
