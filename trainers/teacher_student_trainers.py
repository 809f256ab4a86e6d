"""The soft-label student: CT in, trained on human masks and the teacher's probabilities.

(``docs/method.md``, "Students".) ``TeacherStudentTrainer`` is nnU-Net's default trainer on a student
dataset (``nnunet_ts.datasets.student``), with the target made soft end to end, each change in one hook:

* ``get_tr_and_val_datasets``: pseudo cases load with their preprocessed soft target as a second
  segmentation channel (made now if missing or stale: ``soft_targets.ensure_soft_targets``); optionally
  strong and pseudo cases are drawn at the setting ``strong_fraction`` (default: the plain union, as the
  paper);
* ``edit_training_pipeline`` / ``get_validation_transforms``: nnU-Net's pipelines with the soft
  target carried as ``regression_target`` (interpolated, mirrored, never intensity-augmented) and
  turned into a foreground-probability target at every deep-supervision scale (area-averaged);
* ``_build_loss``: soft Dice + soft cross-entropy (``soft_losses.SoftTargetLoss``) in nnU-Net's
  deep-supervision wrapper; per-source weights ``loss_config.strong`` / ``loss_config.pseudo``; the
  Dice smooth from the setting ``dice_smooth`` (0: patches without tumour no longer reward an
  all-background output, see ``StudentLossConfig.dice_smooth``);
* ``train_step`` / ``validation_step``: tell the loss which samples are pseudo, then nnU-Net's step
  (validation hands nnU-Net's online Dice a soft one-hot target).

Strong cases follow nnU-Net's own data path and loss exactly, so on strong-only data this trainer
is nnU-Net. Validation (``--val``, ``--npz``) and ``nnUNetv2_predict`` are nnU-Net's. Budget, mirroring
and Dice smooth come from the configuration (``planners.training_settings``).

``TeacherStudentBaldeonCalistoTrainer`` swaps the loss: beta Dice + (1 - beta)(soft CE + L1 on pseudo
cases), Baldeon Calisto (FLARE 2022).
"""
from dataclasses import replace
from pathlib import Path

import torch
from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from nnunet_ts.datasets.student import read_sources
from nnunet_ts.errors import InputError
from nnunet_ts.nnunet.trainer_mixins import CPUSpeedMixin, SettingsFromPlansMixin, TrainingPipelineMixin
from nnunet_ts.student.soft_data import SoftTargetDataset, pseudo_case_ids, source_weighted_identifiers
from nnunet_ts.student.soft_losses import SoftTargetLoss, StudentLossConfig, soft_one_hot
from nnunet_ts.student.soft_transforms import wrap_pipeline


class TeacherStudentTrainer(SettingsFromPlansMixin, TrainingPipelineMixin, CPUSpeedMixin, nnUNetTrainer):
    loss_config = StudentLossConfig()

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        if self.settings.dice_smooth is not None:
            self.loss_config = replace(self.loss_config, dice_smooth=float(self.settings.dice_smooth))
        where = f"dataset.json of {self.plans_manager.dataset_name}"
        # a dataset without sources (e.g. `nnunet_ts dataset student`) holds human masks only
        self.sources = read_sources(dataset_json) if "nnunet_ts_sources" in dataset_json else {}
        lm = self.label_manager
        if lm.has_regions or lm.has_ignore_label or len(lm.foreground_labels) != 1:
            raise InputError(f"{where}: the student learns one foreground probability; labels must be "
                             f"background 0 and one tumour label, without regions or ignore label")
        if self.is_cascaded:
            raise InputError(f"{configuration}: the student's soft target uses the segmentation channel a "
                             f"cascade needs; train a non-cascaded configuration (3d_fullres, 3d_tiny)")

    def _build_loss(self):
        loss = super()._build_loss()
        self.student_loss = SoftTargetLoss(self.loss_config, batch_dice=self.configuration_manager.batch_dice,
                                           ddp=self.is_ddp)
        if isinstance(loss, DeepSupervisionWrapper):
            loss.loss = self.student_loss  # nnU-Net's scale weights stay
            return loss
        return self.student_loss

    def get_tr_and_val_datasets(self):
        from nnunetv2.paths import nnUNet_raw

        from nnunet_ts.datasets.student import soft_targets_folder
        from nnunet_ts.student.soft_targets import ensure_soft_targets

        dataset_tr, dataset_val = super().get_tr_and_val_datasets()
        if not self.sources:
            self.print_to_log_file("dataset.json has no 'nnunet_ts_sources': every case is strong, "
                                   "so this is nnU-Net's training (write pseudo cases with write_student_dataset)")
        pseudo = pseudo_case_ids(self.sources, [*dataset_tr.identifiers, *dataset_val.identifiers])
        raw_dataset = Path(nnUNet_raw.get() or ".") / self.plans_manager.dataset_name
        ensure_soft_targets(self.preprocessed_dataset_folder, soft_targets_folder(raw_dataset, self.dataset_json),
                            sorted(set(pseudo)), self.plans_manager,
                            self.dataset_json.get("file_ending", ".nii.gz"),
                            log=self.print_to_log_file)
        drawn = source_weighted_identifiers(dataset_tr.identifiers, pseudo, self.settings.strong_fraction)
        return SoftTargetDataset(dataset_tr, pseudo, drawn), SoftTargetDataset(dataset_val, pseudo)

    def edit_training_pipeline(self, pipeline, deep_supervision_scales, use_mask_for_norm):
        pipeline = super().edit_training_pipeline(pipeline, deep_supervision_scales, use_mask_for_norm)
        return wrap_pipeline(pipeline, deep_supervision_scales,
                             keep_hard_seg=use_mask_for_norm is not None and any(use_mask_for_norm))

    def get_validation_transforms(self, deep_supervision_scales, is_cascaded=False, foreground_labels=None,
                                  regions=None, ignore_label=None):
        pipeline = super().get_validation_transforms(
            deep_supervision_scales, is_cascaded=is_cascaded, foreground_labels=foreground_labels,
            regions=regions, ignore_label=ignore_label)
        return wrap_pipeline(pipeline, deep_supervision_scales)

    def _tell_loss_the_sources(self, batch: dict) -> None:
        self.student_loss.set_batch_sources([self.sources.get(str(k)) == "pseudo" for k in batch["keys"]])

    def train_step(self, batch: dict) -> dict:
        self._tell_loss_the_sources(batch)
        return super().train_step(batch)

    def validation_step(self, batch: dict) -> dict:
        self._tell_loss_the_sources(batch)
        # nnU-Net's online Dice counts soft tp/fp/fn against a one-hot-shaped target
        batch = {**batch, "target": [soft_one_hot(t) for t in batch["target"]]
                 if isinstance(batch["target"], list) else soft_one_hot(batch["target"])}
        return super().validation_step(batch)


class TeacherStudentBaldeonCalistoTrainer(TeacherStudentTrainer):
    """Baldeon Calisto (FLARE 2022): 0.5 Dice + 0.5 (soft CE + L1), the L1 on pseudo cases only."""

    loss_config = StudentLossConfig.baldeon_calisto(beta=0.5)
