"""Trainers of the benchmarks (scripts/bench_*.py): budget trainers without nnU-Net's final validation,
which on clinical-spacing plans predicts whole validation volumes and would cost more than the
benchmark itself."""
from nnunet_ts.trainer_mixins import NoFinalValidationMixin
from nnunet_ts.trainers.box_teacher_trainers import BoxTeacherTinyBudgetTrainer


class BenchBoxTeacherTrainer(NoFinalValidationMixin, BoxTeacherTinyBudgetTrainer):
    """The tiny-budget box teacher (2 x 4 iterations), no final validation."""
