"""Trainer names of earlier releases, now one trainer class on a configuration with settings.

Training with one of these names stops with an error that names its replacement. Building the network
still works, so checkpoints trained under these names keep predicting (``nnUNetv2_predict`` and
``nnunet_ts predict`` build the network through the class named in the checkpoint).
"""
from nnunet_ts.nnunet.trainer_mixins import RenamedTrainerMixin
from nnunet_ts.trainers.baseline_trainers import BaselineTrainer, CTOnlyTeacherTrainer
from nnunet_ts.trainers.box_teacher_trainers import BoxTeacherTrainer
from nnunet_ts.trainers.dual_decoder_student_trainers import DualDecoderStudentTrainer
from nnunet_ts.trainers.teacher_student_trainers import TeacherStudentTrainer

_CONFIG = "a configuration made with `nnunet_ts budget-config -d ID -c NAME {options}`"
_TINY = "--epochs 2 --iterations 4 --val-iterations 2"
_SHORT = "--epochs 25 --iterations 20 --val-iterations 5"
_PLANS = "--epochs E --iterations I"

# old name: (trainer now, budget-config options that give the old behaviour)
RENAMED = {
    "TinyBudgetTrainer": (BaselineTrainer, _TINY),
    "ShortBudgetTrainer": (BaselineTrainer, _SHORT),
    "BoxTeacherTinyBudgetTrainer": (BoxTeacherTrainer, _TINY),
    "BoxTeacherShortBudgetTrainer": (BoxTeacherTrainer, _SHORT),
    "TeacherStudentTinyBudgetTrainer": (TeacherStudentTrainer, _TINY),
    "TeacherStudentShortBudgetTrainer": (TeacherStudentTrainer, _SHORT),
    "DualDecoderStudentTinyBudgetTrainer": (DualDecoderStudentTrainer, _TINY),
    "DualDecoderStudentShortBudgetTrainer": (DualDecoderStudentTrainer, _SHORT),
    "PlansBudgetTrainer": (BaselineTrainer, _PLANS),
    "PlansBudgetTrainer_noSmooth": (BaselineTrainer, f"{_PLANS} --dice-smooth 0"),
    "CTOnlyTeacherPlansBudgetTrainer": (CTOnlyTeacherTrainer, _PLANS),
    "BoxTeacherPlansBudgetTrainer": (BoxTeacherTrainer, _PLANS),
    "BoxTeacherExactBoxTrainer": (BoxTeacherTrainer, f"{_PLANS} --box-perturbation 0"),
    "TeacherStudentPlansBudgetTrainer": (TeacherStudentTrainer, _PLANS),
    "TeacherStudentPlansBudgetTrainer_noSmooth": (TeacherStudentTrainer, f"{_PLANS} --dice-smooth 0"),
    "TeacherStudentTrainer_noSmooth": (TeacherStudentTrainer, f"{_PLANS} --dice-smooth 0"),
    "TeacherStudentBalancedTrainer": (TeacherStudentTrainer, f"{_PLANS} --strong-fraction 0.5"),
    "DualDecoderStudentPlansBudgetTrainer": (DualDecoderStudentTrainer, _PLANS),
    "DualDecoderStudentPlansBudgetTrainer_noSmooth": (DualDecoderStudentTrainer, f"{_PLANS} --dice-smooth 0"),
    "DualDecoderStudentTrainer_noSmooth": (DualDecoderStudentTrainer, f"{_PLANS} --dice-smooth 0"),
}

for _old, (_new, _options) in RENAMED.items():
    globals()[_old] = type(_old, (RenamedTrainerMixin, _new), {
        "__module__": __name__,
        "__doc__": f"Renamed: {_new.__name__} on {_CONFIG.format(options=_options)}.",
        "renamed_to": f"{_new.__name__} on {_CONFIG.format(options=_options)}"})
