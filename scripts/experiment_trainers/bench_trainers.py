"""Trainers of the benchmarks (scripts/bench_*.py): small fixed budgets without nnU-Net's final
validation, which on clinical-spacing plans predicts whole validation volumes and would cost more than
the benchmark itself."""
from nnunet_ts.nnunet.trainer_mixins import FixedBudgetMixin, NoFinalValidationMixin, NoMirroringMixin
from nnunet_ts.trainers.box_teacher_trainers import BoxTeacherTrainer


class BenchBoxTeacherTrainer(NoFinalValidationMixin, FixedBudgetMixin, NoMirroringMixin, BoxTeacherTrainer):
    """A box teacher trained 10 x 20 iterations, no final validation. Timing does not depend on training,
    agreement does: an untrained teacher's probabilities hover around 0.5, where the different tile
    placement of ROI and whole-volume prediction flips the threshold."""

    budget = (10, 20, 2)
