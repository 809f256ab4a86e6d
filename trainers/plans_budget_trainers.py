"""Every network of the paper's experiment, trained for the budget its plans configuration records.

``nnunet_ts budget-config`` writes the budget into a configuration (``"nnunet_ts_budget"``), so
networks that are compared train exactly as long; ``nnunet_ts demo`` uses these classes. All switch
mirroring off (training and inference: the budget goes into iterations) and, with fold ``all``, skip
nnU-Net's final validation (it would predict the training cases; the experiment has a test set).

| trainer | network | paper |
|---|---|---|
| ``PlansBudgetTrainer`` | nnU-Net's default, CT only, strong cases | baseline |
| ``CTOnlyTeacherPlansBudgetTrainer`` | the same, the teacher's sampling (90 % on tumour) | CT-only teacher |
| ``BoxTeacherPlansBudgetTrainer`` | ``BoxTeacherTrainer``: CT + segbox | box-guided teacher |
| ``TeacherStudentPlansBudgetTrainer`` | ``TeacherStudentTrainer``: soft targets | SO student |
| ``DualDecoderStudentPlansBudgetTrainer`` | ``DualDecoderStudentTrainer``: + segbox decoder | DO student |

``PlansBudgetTrainer_noSmooth``, ``TeacherStudentPlansBudgetTrainer_noSmooth`` and
``DualDecoderStudentPlansBudgetTrainer_noSmooth``: the same with Dice smooth 0 (nnU-Net's
``nnUNetTrainerDiceCELoss_noSmooth`` loss for the baseline, ``StudentLossConfig.dice_smooth`` 0 for the
students), so the three compared networks share one Dice.
"""
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from nnunetv2.training.nnUNetTrainer.variants.loss.nnUNetTrainerDiceLoss import nnUNetTrainerDiceCELoss_noSmooth

from nnunet_ts.nnunet.trainer_mixins import (ForegroundSamplingMixin, NoFinalValidationOnFoldAllMixin,
                                      NoMirroringMixin, OneDNNSinglePatchMixin, PlansBudgetMixin)
from nnunet_ts.trainers.box_teacher_trainers import BoxTeacherTrainer
from nnunet_ts.trainers.dual_decoder_student_trainers import (DualDecoderStudentTrainer,
                                                              DualDecoderStudentTrainer_noSmooth)
from nnunet_ts.trainers.teacher_student_trainers import TeacherStudentTrainer, TeacherStudentTrainer_noSmooth


class PlansBudgetTrainer(NoFinalValidationOnFoldAllMixin, PlansBudgetMixin, NoMirroringMixin, OneDNNSinglePatchMixin,
                         nnUNetTrainer):
    pass


class CTOnlyTeacherPlansBudgetTrainer(ForegroundSamplingMixin, PlansBudgetTrainer):
    """The box teacher's sampling without the box: the comparison isolates the segbox channel."""

    foreground_sampling = BoxTeacherTrainer.foreground_sampling


class BoxTeacherPlansBudgetTrainer(NoFinalValidationOnFoldAllMixin, PlansBudgetMixin, NoMirroringMixin,
                                   BoxTeacherTrainer):
    pass


class TeacherStudentPlansBudgetTrainer(NoFinalValidationOnFoldAllMixin, PlansBudgetMixin, NoMirroringMixin,
                                       TeacherStudentTrainer):
    pass


class DualDecoderStudentPlansBudgetTrainer(NoFinalValidationOnFoldAllMixin, PlansBudgetMixin, NoMirroringMixin,
                                           DualDecoderStudentTrainer):
    pass


# each _noSmooth class is its plans-budget twin with the smooth-0 loss class placed before nnU-Net's
# trainer in the MRO: the mixins are listed once, above


class PlansBudgetTrainer_noSmooth(PlansBudgetTrainer, nnUNetTrainerDiceCELoss_noSmooth):
    pass


class TeacherStudentPlansBudgetTrainer_noSmooth(TeacherStudentPlansBudgetTrainer, TeacherStudentTrainer_noSmooth):
    pass


class DualDecoderStudentPlansBudgetTrainer_noSmooth(DualDecoderStudentPlansBudgetTrainer,
                                                    DualDecoderStudentTrainer_noSmooth):
    pass
