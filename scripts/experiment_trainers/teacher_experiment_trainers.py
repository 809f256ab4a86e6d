"""Trainers of the teacher experiment (scripts/teacher_experiment.py): one budget for all three.

The budget comes from the plans configuration (``"nnunet_ts_budget"``, see PlansBudgetMixin), so
the box-guided teachers and the CT-only network train exactly as long. Mirroring is off for all
three, to spend the budget on iterations. nnU-Net's validation at the end of training is skipped:
with fold ``all`` it would predict the training cases; the experiment predicts its test set instead.
"""
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from nnunet_ts.nnunet.trainer_mixins import (NoFinalValidationOnFoldAllMixin, NoMirroringMixin, OneDNNSinglePatchMixin,
                                      PlansBudgetMixin)
from nnunet_ts.trainers.box_teacher_trainers import BoxTeacherExactBoxTrainer, BoxTeacherTrainer


class TeacherExpBoxTrainer(NoFinalValidationOnFoldAllMixin, PlansBudgetMixin, NoMirroringMixin, BoxTeacherTrainer):
    """Box-guided teacher, trained with perturbed boxes in half of the samples."""


class TeacherExpExactBoxTrainer(NoFinalValidationOnFoldAllMixin, PlansBudgetMixin, NoMirroringMixin,
                                BoxTeacherExactBoxTrainer):
    """Box-guided teacher, trained on exact boxes only."""


class TeacherExpCTOnlyTrainer(NoFinalValidationOnFoldAllMixin, PlansBudgetMixin, NoMirroringMixin,
                              OneDNNSinglePatchMixin, nnUNetTrainer):
    """The CT-only comparison (the paper's "point guided"): nnU-Net's default trainer, CT channel only."""
