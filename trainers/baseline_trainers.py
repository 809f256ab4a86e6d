"""nnU-Net's default trainer with our training settings: the baseline and the CT-only teacher.

``BaselineTrainer`` is nnU-Net's ``nnUNetTrainer`` (CT in, hard masks) that reads the configuration's
settings (``planners.training_settings``: budget, Dice smooth, mirroring, final validation), so the
baseline trains on exactly the terms of the students it is compared with. ``dice_smooth`` 0 builds
nnU-Net's own ``nnUNetTrainerDiceCELoss_noSmooth`` loss.

``CTOnlyTeacherTrainer`` is the box teacher without its box: the baseline with the teacher's patch
sampling (90 % on tumour), so a comparison with ``BoxTeacherTrainer`` isolates the segbox channel.
"""
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from nnunet_ts.nnunet.trainer_mixins import CPUSpeedMixin, DiceSmoothMixin, SettingsFromPlansMixin
from nnunet_ts.planners.training_settings import TrainingSettings
from nnunet_ts.teacher.defaults import FOREGROUND_SAMPLING


class BaselineTrainer(SettingsFromPlansMixin, DiceSmoothMixin, CPUSpeedMixin, nnUNetTrainer):
    pass


class CTOnlyTeacherTrainer(BaselineTrainer):
    settings_defaults = TrainingSettings(foreground_sampling=FOREGROUND_SAMPLING)
