"""The box-guided teacher: CT + segbox in, tumour mask out (``docs/method.md``, "Box-guided teacher").

``BoxTeacherTrainer`` is nnU-Net's default trainer with three changes, each in one hook:

* the segbox channel stays a box through augmentation: it travels as ``regression_target`` (moved
  with the CT by the spatial transform and mirroring, skipped by every intensity transform) and is
  thresholded back to 0/1 (``edit_training_pipeline``); boxes are perturbed as a reader would draw
  them (Sun et al.: scale 0.9-1.2, edges moved by < 1/10 of the side) in a fraction of the samples
  (setting ``box_perturbation``, default 0.5; 0 trains on exact boxes);
* the network thresholds its segbox input at 0.5 (a forward pre-hook set in
  ``build_network_architecture``), so nnU-Net's spline-resampled boxes at ``nnUNetv2_predict`` time,
  and any preprocessing not done by ``nnunet_ts plan-teacher``, reach it as exact boxes;
* patches are centred on tumour (inside its box) in 90 % of the samples (setting
  ``foreground_sampling``; ``nnunet_ts.teacher.defaults``).

Budget, mirroring and Dice smooth come from the configuration (``planners.training_settings``).
"""
from functools import partial

import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from nnunet_ts.boxes.perturbation import BoxPerturbation
from nnunet_ts.errors import InputError
from nnunet_ts.nnunet.trainer_mixins import (
    CPUSpeedMixin,
    DiceSmoothMixin,
    SettingsFromPlansMixin,
    TrainingPipelineMixin,
)
from nnunet_ts.planners.training_settings import TrainingSettings
from nnunet_ts.teacher.defaults import BOX_PERTURBATION, FOREGROUND_SAMPLING
from nnunet_ts.teacher.segbox_channel import SEGBOX_THRESHOLD, segbox_channel_index
from nnunet_ts.teacher.segbox_transforms import RestoreSegboxTransform, StashSegboxTransform


def _binarize_segbox_input(module, args, channel: int):
    x = args[0].clone()
    x[:, channel] = (x[:, channel] >= SEGBOX_THRESHOLD).to(x.dtype)
    return (x, *args[1:])


class BoxTeacherTrainer(SettingsFromPlansMixin, DiceSmoothMixin, TrainingPipelineMixin, CPUSpeedMixin,
                        nnUNetTrainer):
    segbox_channel = 1  # teacher datasets: _0000 CT, _0001 segbox (checked against dataset.json)
    settings_defaults = TrainingSettings(foreground_sampling=FOREGROUND_SAMPLING, box_perturbation=BOX_PERTURBATION)

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        channel = segbox_channel_index(dataset_json, f"dataset.json of {self.plans_manager.dataset_name}")
        if channel != self.segbox_channel:
            raise InputError(f"dataset.json of {self.plans_manager.dataset_name}: the segbox must be "
                             f"channel {self.segbox_channel} (_000{self.segbox_channel}), found it as "
                             f"channel {channel}; write the dataset with `nnunet_ts dataset teacher`")
        probability = self.settings.box_perturbation
        self.box_perturbation = BoxPerturbation(probability=probability) if probability else None

    def edit_training_pipeline(self, pipeline, deep_supervision_scales, use_mask_for_norm):
        pipeline = super().edit_training_pipeline(pipeline, deep_supervision_scales, use_mask_for_norm)
        # the rectangles lie in axial slices: where nnU-Net's plans transposed the data, that axis moved
        axial_axis = list(self.plans_manager.transpose_forward).index(0)
        pipeline.transforms = [StashSegboxTransform(self.segbox_channel, self.box_perturbation, axial_axis),
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
