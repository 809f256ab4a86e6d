"""The dual-output student: one encoder, a segmentation decoder and a segbox decoder (``docs/method.md``, "Students").

``DualDecoderStudentTrainer`` is ``TeacherStudentTrainer`` (soft-label student on a student dataset)
with a second, fully separate decoder that predicts the segbox (one convolution per stage by default,
within the 1.5x time target; ``plan-dual --box-decoder-convs full`` gives the paper's copy of the
segmentation decoder); each change in one hook:

* ``__init__``: lambda and the segbox form from the configuration's ``"nnunet_ts"`` entry, written by
  ``nnunet_ts plan-dual`` (``planners.dual_decoder_plans``); the class attributes below are the
  defaults for any other configuration (``3d_fullres``, ``3d_tiny`` train as they are). Logged;
* ``build_network_architecture``: the plans' U-Net wrapped by ``box_network``, here ``DualDecoderUNet``
  (deep supervision on both decoders; eval mode returns the segmentation only, so nnU-Net's validation,
  predictor, mirroring and checkpoints are unchanged; ``SunStudentTrainer`` swaps this one hook);
* ``get_tr_and_val_datasets``: training cases load with their segbox as one more seg channel
  (``segbox_data``), made now if missing or stale (``segbox_targets.ensure_segbox_targets``): derived
  from the mask for strong cases, the real annotated boxes (``segboxesTr``) for pseudo cases.
  Validation loads as the single-output student's (the segbox decoder is not validated);
* ``edit_training_pipeline``: the student's pipeline with the segbox carried as a regression target
  (moved with the CT, never intensity-augmented, thresholded back to 0/1, nearest-downsampled per
  deep-supervision scale); the target becomes [foreground probability, segbox] per scale;
* ``_build_loss``: the student's loss + ``box_loss_weight`` * (soft Dice + BCE on sigmoid box logits),
  with nnU-Net's scale weights for both (``segbox_loss.DualDecoderLoss``).

Budget, mirroring and Dice smooth (both decoders' losses) come from the configuration
(``planners.training_settings``), as for the single-output student.
"""
from pathlib import Path

import torch
from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper

from nnunet_ts.dual_decoder.network import DualDecoderUNet
from nnunet_ts.dual_decoder.segbox_loss import DualDecoderLoss, SegboxLoss
from nnunet_ts.dual_decoder.segbox_target_transforms import carry_segbox_target
from nnunet_ts.planners.dual_decoder_plans import DualDecoderSettings, dual_decoder_settings
from nnunet_ts.trainers.teacher_student_trainers import TeacherStudentTrainer


class DualDecoderStudentTrainer(TeacherStudentTrainer):
    # defaults for configurations without the settings: DualDecoderSettings' own, one source for both
    box_loss_weight = DualDecoderSettings.box_loss_weight  # lambda: loss = seg loss + lambda * box loss
    segbox_mode = DualDecoderSettings.segbox_mode  # form of the strong cases' segboxes (segbox.SEGBOX_MODES)
    box_decoder_convs = DualDecoderSettings.box_decoder_convs  # per box-decoder stage; None: the paper's full copy

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        settings, from_plans = self._dual_settings(self.configuration_manager, self.plans_manager, configuration)
        self.box_loss_weight, self.segbox_mode = float(settings.box_loss_weight), settings.segbox_mode
        convs = settings.box_decoder_convs or "as the segmentation decoder (full)"
        self.print_to_log_file(f"dual decoder: box_loss_weight (lambda) {self.box_loss_weight:g}, segbox_mode "
                               f"{self.segbox_mode!r}, box decoder convolutions per stage {convs}, from "
                               f"{'the plans' if from_plans else 'the trainer defaults'}")

    @classmethod
    def _dual_settings(cls, configuration_manager, plans_manager, name: str | None = None):
        """(settings, from_plans): the configuration's dual-decoder settings, the class attributes by default."""
        default = DualDecoderSettings(box_loss_weight=cls.box_loss_weight, segbox_mode=cls.segbox_mode,
                                      box_decoder_convs=cls.box_decoder_convs)
        return dual_decoder_settings(
            configuration_manager.configuration, default,
            f"{f'configuration {name!r}' if name else 'the configuration'} of {plans_manager.plans_name} "
            f"({plans_manager.dataset_name})")

    @classmethod
    def build_network_architecture(cls, plans_manager, configuration_manager, num_input_channels,
                                   num_output_channels, enable_deep_supervision=True):
        unet = super().build_network_architecture(plans_manager, configuration_manager, num_input_channels,
                                                  num_output_channels, enable_deep_supervision)
        # read here too: nnU-Net's predictor builds the network without constructing the trainer
        settings, _ = cls._dual_settings(configuration_manager, plans_manager)
        # the segbox layers too (the U-Net has them already), and bf16 around the whole two-output forward
        return cls.cpu_ready(cls.box_network(unet, settings), configuration_manager)

    @classmethod
    def box_network(cls, unet, settings: DualDecoderSettings):
        """The two-output network around the plans' U-Net: here a second, segbox decoder."""
        return DualDecoderUNet(unet, box_channels=1, box_convs_per_stage=settings.box_decoder_convs)

    def _build_loss(self):
        seg_loss = super()._build_loss()
        box_loss = SegboxLoss(batch_dice=self.configuration_manager.batch_dice,
                              smooth=self.loss_config.dice_smooth, ddp=self.is_ddp)
        if isinstance(seg_loss, DeepSupervisionWrapper):
            box_loss = DeepSupervisionWrapper(box_loss, seg_loss.weight_factors)
        return DualDecoderLoss(seg_loss, box_loss, self.box_loss_weight)

    def get_tr_and_val_datasets(self):
        from nnunetv2.paths import nnUNet_raw

        from nnunet_ts.dual_decoder.segbox_data import SegboxTargetDataset
        from nnunet_ts.dual_decoder.segbox_targets import ensure_segbox_targets, segboxes_folder

        dataset_tr, dataset_val = super().get_tr_and_val_datasets()
        cases = sorted(set(dataset_tr.identifiers))
        raw_dataset = Path(nnUNet_raw.get() or ".") / self.plans_manager.dataset_name
        ensure_segbox_targets(self.preprocessed_dataset_folder,
                              [c for c in cases if self.sources.get(c) != "pseudo"],
                              [c for c in cases if self.sources.get(c) == "pseudo"],
                              self.plans_manager, segboxes_folder(raw_dataset, self.dataset_json),
                              self.dataset_json.get("file_ending", ".nii.gz"), self.segbox_mode,
                              log=self.print_to_log_file)
        return SegboxTargetDataset(dataset_tr), dataset_val

    def edit_training_pipeline(self, pipeline, deep_supervision_scales, use_mask_for_norm):
        return carry_segbox_target(super().edit_training_pipeline(pipeline, deep_supervision_scales,
                                                                  use_mask_for_norm))
