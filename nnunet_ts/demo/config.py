"""What the demo runs: scenarios (cohort sizes) and scale presets (network, budgets), as plain data.

Also the experiment itself: its datasets (ids) and the networks it trains (``MODELS``).

No torch here: ``nnunet_ts demo --help`` and the tests read it without importing nnU-Net.

Scenarios follow the paper's two student experiments:

* ``scarce``: few strong (masked) cases, many weak (boxed) ones; the paper has 40 strong and ~1000
  weak, where the students beat the baseline by 25-45 DSC points (Table 5);
* ``vast``: strong and weak sets of similar size (paper: ~500 / ~750), where they do not (Table 4).

Scale presets:

* ``cpu``: nnU-Net's planning and preprocessing, then ``3d_tiny`` (8..64 features, patch 32x64x64,
  batch 2), short fixed budgets; about 25 minutes on a 2-core CPU (docs/cpu.md);
* ``gpu``: nnU-Net's real ``3d_fullres`` plans, 250 iterations per epoch as nnU-Net, 300 epochs
  (the paper trains up to 350), larger cohorts.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

SCENARIOS = ("scarce", "vast")
SCALES = ("cpu", "gpu")


@dataclass(frozen=True)
class Cohort:
    """Numbers of synthetic cases per subset (``nnunet_ts synth --n-strong/--n-weak/--n-test``)."""

    n_strong: int
    n_weak: int
    n_test: int

    def __post_init__(self) -> None:
        if self.n_strong < 2 or self.n_weak < 1 or self.n_test < 1:
            raise ValueError(f"need >= 2 strong, >= 1 weak and >= 1 test case, got {self}")


@dataclass(frozen=True)
class Budget:
    """Training length: ``epochs`` x ``iterations`` per epoch (``val_iterations`` validation batches)."""

    epochs: int
    iterations: int
    val_iterations: int = 2


@dataclass(frozen=True)
class DemoConfig:
    """One run of the demo.

    Attributes:
        scenario, scale: names (see the module docstring).
        cohort: synthetic case counts (ignored with a real case manifest).
        synth_shape: image size (z, y, x) of the synthetic CTs, voxels (compact preset).
        network: the nnU-Net configuration trained: ``3d_tiny`` (added by ``nnunet_ts tiny-plans``,
            inheriting ``3d_fullres``) or ``3d_fullres``.
        tiny_patch: patch (z, y, x) of ``3d_tiny``, voxels.
        teacher_budget: box-guided and CT-only teachers (equal, for a fair comparison).
        student_budget: baseline, SO and DO students (equal).
        student_dice_smooth: the Dice's smooth of the baseline and both students (one Dice for the
            three; None = nnU-Net's 1e-5). 0 by default: with nnU-Net's smooth the SO student un-learned
            every tumour of the synthetic data at CPU budgets (``StudentLossConfig.dice_smooth``). The
            teachers keep nnU-Net's default.
        predict_step_size: sliding-window step of the test predictions, a fraction of the patch
            (nnU-Net: 0.5; 1.0 = tiles without overlap, 3-4x fewer network passes on a CPU).
        panels: test cases shown as image panels in the report.
        seed: cohort seed.
        num_processes: worker processes of synthesis, planning, preprocessing and prediction.
    """

    scenario: str
    scale: str
    cohort: Cohort
    synth_shape: tuple[int, int, int] = (64, 128, 128)
    network: str = "3d_tiny"
    tiny_patch: tuple[int, int, int] = (32, 64, 64)
    teacher_budget: Budget = Budget(16, 25)
    student_budget: Budget = Budget(20, 25)
    student_dice_smooth: float | None = 0.0
    predict_step_size: float = 1.0
    panels: int = 4
    seed: int = 0
    num_processes: int = 2

    def __post_init__(self) -> None:
        if self.scenario not in SCENARIOS:
            raise ValueError(f"unknown scenario {self.scenario!r}; choose one of {', '.join(SCENARIOS)}")
        if self.scale not in SCALES:
            raise ValueError(f"unknown scale {self.scale!r}; choose one of {', '.join(SCALES)}")
        if self.network not in ("3d_tiny", "3d_fullres"):
            raise ValueError(f"network must be 3d_tiny or 3d_fullres, got {self.network!r}")

    def with_budget(self, epochs: int | None = None, iterations: int | None = None) -> DemoConfig:
        """The same run with every training's epochs and/or iterations per epoch replaced."""
        def change(b: Budget) -> Budget:
            return replace(b, epochs=epochs or b.epochs, iterations=iterations or b.iterations)

        return replace(self, teacher_budget=change(self.teacher_budget), student_budget=change(self.student_budget))


# Budgeted for a 2-core CPU (about 25 minutes in all; docs/benchmarks.md has the measured times).
_CPU_COHORTS = {"scarce": Cohort(n_strong=10, n_weak=40, n_test=12),
                "vast": Cohort(n_strong=26, n_weak=26, n_test=12)}
_GPU_COHORTS = {"scarce": Cohort(n_strong=40, n_weak=400, n_test=40),
                "vast": Cohort(n_strong=200, n_weak=240, n_test=40)}


def preset(scenario: str, scale: str) -> DemoConfig:
    """The configuration of a scenario at a scale."""
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}; choose one of {', '.join(SCALES)}")
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}; choose one of {', '.join(SCENARIOS)}")
    if scale == "cpu":
        return DemoConfig(scenario, scale, _CPU_COHORTS[scenario])
    return DemoConfig(scenario, scale, _GPU_COHORTS[scenario], network="3d_fullres",
                      teacher_budget=Budget(300, 250, 50), student_budget=Budget(300, 250, 50),
                      predict_step_size=0.5, num_processes=8)


# ----- the experiment: datasets and networks

TEACHER_ID, STUDENT_ID, WEAK_ID, PSEUDO_ID = 701, 702, 703, 704
TEACHER_CONFIG, STUDENT_CONFIG = "demo_teacher", "demo_student"
POSTPROCESSING = {"no_postprocessing": "", "largest_component": " --largest-component"}


@dataclass(frozen=True)
class Model:
    """One trained network of the experiment.

    Attributes:
        key: folder name (predictions/<key>, evaluation/<key>).
        label: name in the report.
        role: ``teacher`` or ``student`` (which table).
        dataset_id: dataset it trains on.
        trainer: nnU-Net trainer class.
        configuration: training configuration (``demo_teacher`` or ``demo_student``).
        test_input: dataset whose ``imagesTs`` it predicts (the teacher needs the segbox channel).
    """

    key: str
    label: str
    role: str
    dataset_id: int
    trainer: str
    configuration: str
    test_input: int


# The teachers share one configuration (TEACHER_CONFIG), the baseline and the two students another
# (STUDENT_CONFIG): one budget and one Dice per comparison (DemoConfig.student_dice_smooth).
MODELS = (
    Model("box_teacher", "box-guided teacher", "teacher", TEACHER_ID, "BoxTeacherTrainer",
          TEACHER_CONFIG, TEACHER_ID),
    Model("ct_only_teacher", "CT-only teacher", "teacher", STUDENT_ID, "CTOnlyTeacherTrainer",
          TEACHER_CONFIG, STUDENT_ID),
    Model("baseline", "baseline (strong only)", "student", STUDENT_ID, "BaselineTrainer",
          STUDENT_CONFIG, STUDENT_ID),
    Model("so_student", "SO student", "student", PSEUDO_ID, "TeacherStudentTrainer",
          STUDENT_CONFIG, STUDENT_ID),
    Model("do_student", "DO student", "student", PSEUDO_ID, "DualDecoderStudentTrainer",
          STUDENT_CONFIG, STUDENT_ID),
)
