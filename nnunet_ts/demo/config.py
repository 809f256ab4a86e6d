"""What the demo runs: scenarios (cohort sizes) and scale presets (network, budgets), as plain data.

Also the experiment itself: its datasets (ids) and the networks it trains (``MODELS``).

No torch here: ``nnunet_ts demo --help`` and the tests read it without importing nnU-Net.

Scenarios follow the paper's two student experiments:

* ``scarce``: few strong (masked) cases, many weak (boxed) ones; the paper has 40 strong and ~1000
  weak, where the students beat the baseline by 25-45 DSC points (Table 5);
* ``vast``: strong and weak sets of similar size (paper: ~500 / ~750), where they do not (Table 4).

Scale presets:

* ``cpu``: nnU-Net's planning and preprocessing, then ``3d_tiny`` (8..64 features, patch 32x64x64,
  batch 2), short fixed budgets (docs/cpu.md);
* ``gpu``: nnU-Net's real ``3d_fullres`` plans, 250 iterations per epoch as nnU-Net, 300 epochs
  (the paper trains up to 350), larger cohorts.

Held-out cases form two sets, split by patient (``nnunet_ts.demo.sets``): a *validation* set for
design choices and a *test* set for the final tables only (>= 40 cases at both scales, for the
confidence intervals of ``nnunet_ts.evaluation.statistics``).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

SCENARIOS = ("scarce", "vast")
SCALES = ("cpu", "gpu")


@dataclass(frozen=True)
class Cohort:
    """Numbers of synthetic cases per subset.

    ``nnunet_ts synth`` writes ``n_validation + n_test`` held-out cases (its ``--n-test``); the demo
    splits them by patient into the validation and the test set. With a real case manifest the counts
    are ignored, and its held-out patients are split in the proportion ``n_validation : n_test``.
    """

    n_strong: int
    n_weak: int
    n_test: int
    n_validation: int = 0

    def __post_init__(self) -> None:
        if self.n_strong < 2 or self.n_weak < 1 or self.n_test < 1 or self.n_validation < 0:
            raise ValueError(f"need >= 2 strong, >= 1 weak, >= 1 test and >= 0 validation cases, got {self}")

    @property
    def n_held_out(self) -> int:
        return self.n_test + self.n_validation

    @property
    def validation_fraction(self) -> float:
        return self.n_validation / self.n_held_out


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
        tiny_patch: patch (z, y, x) of ``3d_tiny``, voxels, requested: ``nnunet_ts tiny-plans`` caps each axis
            at nnU-Net's ``3d_fullres`` patch (on the synthetic lung crops 32 x 56 x 48).
        teacher_budget: box-guided and CT-only teachers (equal, for a fair comparison).
        student_budget: baseline, SO and DO students (equal).
        train_seeds: trainings of each compared network (baseline, SO, DO), with training seeds
            0 .. train_seeds - 1; the teachers train once, with seed 0.
        lung_crops: baseline, students and teachers train and predict on one crop per lung
            (``nnunet_ts.datasets.lung_crop``, as the paper's students); predictions are pasted back and
            scored on the whole CT. False: whole scans.
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
    teacher_budget: Budget = Budget(50, 25)
    student_budget: Budget = Budget(80, 25)
    train_seeds: int = 1
    lung_crops: bool = True
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
        if self.train_seeds < 1:
            raise ValueError(f"train_seeds must be >= 1, got {self.train_seeds}")

    def with_budget(self, epochs: int | None = None, iterations: int | None = None,
                    student_epochs: int | None = None) -> DemoConfig:
        """The same run with every training's epochs and/or iterations per epoch replaced;
        ``student_epochs`` then sets the compared networks' epochs alone (baseline, SO, DO: still one
        budget for the three), the teachers keeping theirs."""
        def change(b: Budget, new_epochs: int | None) -> Budget:
            return replace(b, epochs=new_epochs or b.epochs, iterations=iterations or b.iterations)

        return replace(self, teacher_budget=change(self.teacher_budget, epochs),
                       student_budget=change(self.student_budget, student_epochs or epochs))


# Budgeted for a 2-core CPU (docs/benchmarks.md has the measured times). 40 test cases for the
# confidence intervals; synthetic cases are cheap, predicting them is what costs (docs/experiments.md).
_CPU_COHORTS = {"scarce": Cohort(n_strong=10, n_weak=40, n_test=40, n_validation=20),
                "vast": Cohort(n_strong=26, n_weak=26, n_test=40, n_validation=20)}
_GPU_COHORTS = {"scarce": Cohort(n_strong=40, n_weak=400, n_test=60, n_validation=30),
                "vast": Cohort(n_strong=200, n_weak=240, n_test=60, n_validation=30)}


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
    """One network of the experiment.

    Attributes:
        key: folder name (predictions/<key>/seed<k>, evaluation/<key>/seed<k>).
        label: name in the report.
        role: ``teacher`` or ``student`` (which table; students train once per training seed).
        dataset_id: dataset it trains on.
        trainer: nnU-Net trainer class.
        configuration: base name of its training configuration (``demo_teacher`` or ``demo_student``;
            the seed is appended, see :class:`Run`).
        test_input: dataset whose ``imagesTs`` it predicts (the teacher needs the segbox channel).
    """

    key: str
    label: str
    role: str
    dataset_id: int
    trainer: str
    configuration: str
    test_input: int


@dataclass(frozen=True)
class Run:
    """One training of a network: ``model`` with training seed ``seed``.

    Its configuration ``<base>_seed<k>`` carries the seed in its ``"nnunet_ts"`` settings, so each
    training has its own results folder (``<Trainer>__nnUNetPlans__<configuration>``).
    """

    model: Model
    seed: int

    @property
    def configuration(self) -> str:
        return f"{self.model.configuration}_seed{self.seed}"

    @property
    def name(self) -> str:
        """Step and log names: ``<key>_seed<k>``."""
        return f"{self.model.key}_seed{self.seed}"


# The teachers share one configuration (TEACHER_CONFIG), the baseline and the two students another
# (STUDENT_CONFIG): one budget and one Dice per comparison (DemoConfig.student_dice_smooth). The
# baseline (702) and the students (704) train with one plan: 704's plans are 702's, moved over.
MODELS = (
    Model("box_teacher", "box-guided teacher", "teacher", TEACHER_ID, "BoxTeacherTrainer",
          TEACHER_CONFIG, TEACHER_ID),
    # the paper's CT-only teacher is point-guided (a crop centred on the box); ours sees what the students
    # see, so it is named apart and not set beside the paper's numbers
    Model("ct_only_teacher", "CT-only teacher (unguided)", "teacher", STUDENT_ID, "CTOnlyTeacherTrainer",
          TEACHER_CONFIG, STUDENT_ID),
    Model("baseline", "baseline (strong only)", "student", STUDENT_ID, "BaselineTrainer",
          STUDENT_CONFIG, STUDENT_ID),
    Model("so_student", "SO student", "student", PSEUDO_ID, "TeacherStudentTrainer",
          STUDENT_CONFIG, STUDENT_ID),
    Model("do_student", "DO student", "student", PSEUDO_ID, "DualDecoderStudentTrainer",
          STUDENT_CONFIG, STUDENT_ID),
)
MODEL = {m.key: m for m in MODELS}
COMPARED = ("baseline", "so_student", "do_student")  # one plan, one budget, one loss; trained per seed


def runs(config: DemoConfig) -> tuple[Run, ...]:
    """Every training of the demo: the teachers with seed 0, each compared network with each seed."""
    return tuple(Run(m, s) for m in MODELS
                 for s in (range(config.train_seeds) if m.key in COMPARED else (0,)))
