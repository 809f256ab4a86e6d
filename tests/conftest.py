"""What several test modules share, made once per session: tiny trained models and planned datasets.

Trained models come from the stock commands a user types (``nnunet_ts dataset``, nnU-Net's planning,
``nnunet_ts tiny-plans`` with a 2 x 4 iteration budget, ``nnUNetv2_train``), so the tests that use
them also cover that path.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.factories.case_factory import write_cases
from tests.factories.stock import MODEL_LOAD_REACHED, TINY, prefix, run, set_roots


@dataclass(frozen=True)
class TrainedModel:
    """A model trained by the stock commands: its nnU-Net ``root``, dataset folder name, results
    ``folder`` (``<Trainer>__nnUNetPlans__3d_tiny``) and the training output per fold."""

    root: Path
    dataset: str
    trainer: str
    folder: Path
    logs: dict

    @property
    def raw(self) -> Path:
        return self.root / "nnUNet_raw" / self.dataset


def pytest_configure(config):
    # pytest-xdist's marker (make test: -n 2 --dist loadgroup), registered for runs without xdist too
    config.addinivalue_line("markers", "xdist_group(name): run with the other tests of this group in one worker")


BOX_TEACHER_IDS = {"teacher": 911, "student": 912, "weak": 913}


@pytest.fixture(scope="session")
def box_teacher_model(tmp_path_factory) -> TrainedModel:
    """``BoxTeacherTrainer`` on teacher dataset 911 (6 strong cases, 2-fold splits, 2 test cases), folds 0
    and 1; with the student (912) and weak (913, 4 cases) datasets of the same cohort."""
    from nnunet_ts.cli.main import main

    root = tmp_path_factory.mktemp("box_teacher")
    cases = write_cases(root / "cases", n_strong=6, n_weak=4, n_test=2)
    did = BOX_TEACHER_IDS["teacher"]
    with pytest.MonkeyPatch.context() as mp:  # the writing and planning commands, in this process
        set_roots(mp, root, create=True)
        for kind, dataset_id in BOX_TEACHER_IDS.items():
            assert main(["dataset", kind, "--cases", str(cases.parent), "-d", str(dataset_id),
                         "-n", kind[0].upper(), "--folds", "2"]) == 0
        assert main(["plan-teacher", "-d", str(did), "-np", "1"]) == 0
        assert main(["tiny-plans", "-d", str(did), *TINY.split()]) == 0
    logs = {fold: run(prefix(root) + f"nnUNetv2_train {did} 3d_tiny {fold} -tr BoxTeacherTrainer -device cpu",
                      nnUNet_n_proc_DA="0") for fold in (0, 1)}
    dataset = f"Dataset{did}_T"
    return TrainedModel(root, dataset, "BoxTeacherTrainer",
                        root / "nnUNet_results" / dataset / "BoxTeacherTrainer__nnUNetPlans__3d_tiny", logs)


@pytest.fixture(scope="session")
def ct_model(tmp_path_factory) -> TrainedModel:
    """``BaselineTrainer`` (CT only) on student dataset 931 (6 strong cases, 2-fold splits, 2 test
    cases), fold 0, planned by stock ``nnUNetv2_plan_and_preprocess`` with its dataset check."""
    root = tmp_path_factory.mktemp("ct_model")
    cases = write_cases(root / "cases", n_strong=6, n_weak=0, n_test=2)
    p = prefix(root)
    run(p + f"nnunet_ts dataset student --cases {cases.parent} -d 931 -n Pred --folds 2")
    run(p + "nnUNetv2_plan_and_preprocess -d 931 -c 3d_fullres -np 1 --verify_dataset_integrity")
    run(p + f"nnunet_ts tiny-plans -d 931 {TINY}")
    log = run(p + "nnUNetv2_train 931 3d_tiny 0 -tr BaselineTrainer -device cpu", nnUNet_n_proc_DA="0")
    dataset = "Dataset931_Pred"
    return TrainedModel(root, dataset, "BaselineTrainer",
                        root / "nnUNet_results" / dataset / "BaselineTrainer__nnUNetPlans__3d_tiny", {0: log})


# A planned teacher dataset (nothing trained). The teacher cases are (3.0, 1.5, 1.5) mm (z, y, x); the
# spacing donor is planned at (2.0, 1.0, 1.0), so preprocessing really resamples (3D spline: the
# anisotropy is below nnU-Net's threshold of 3).
TEACHER_ID, SPACING_ID = 903, 904
DONOR_SPACING = [2.0, 1.0, 1.0]


@pytest.fixture(scope="session")
def teacher_root(tmp_path_factory) -> Path:
    """Teacher dataset 903 ("BoxT", 6 strong cases, 2 test cases), planned by ``plan-teacher
    --spacing-from`` a donor, with ``3d_tiny``."""
    import json

    from nnunet_ts.cli.main import main

    root = tmp_path_factory.mktemp("teacher")
    write_cases(root / "cases", n_strong=6, n_weak=0, n_test=2)
    with pytest.MonkeyPatch.context() as mp:
        set_roots(mp, root, create=True)
        donor = root / "nnUNet_preprocessed" / f"Dataset{SPACING_ID}_Donor"
        donor.mkdir()
        (donor / "nnUNetPlans.json").write_text(json.dumps({
            "dataset_name": donor.name, "plans_name": "nnUNetPlans",
            "configurations": {"3d_fullres": {"spacing": DONOR_SPACING}}}))
        assert main(["dataset", "teacher", "--cases", str(root / "cases"), "-d", str(TEACHER_ID),
                     "-n", "BoxT", "--folds", "2"]) == 0
        assert main(["plan-teacher", "-d", str(TEACHER_ID), "--spacing-from", str(SPACING_ID),
                     "-np", "1"]) == 0
        assert main(["tiny-plans", "-d", str(TEACHER_ID), "--patch", "16", "32", "32"]) == 0
    return root


# Planned student datasets (nothing trained). Cases are (3.0, 1.5, 1.5) mm (z, y, x), planned at
# (2.0, 1.0, 1.0) mm, so preprocessing really resamples; in the soft one, one case has zero slices in
# its CT, so nnU-Net's crop to the nonzero region crops.
STUDENT_ID, DUAL_ID, DUAL_NAME = 906, 908, "Dual"
TARGET_SPACING = [2.0, 1.0, 1.0]


@pytest.fixture(scope="session")
def student_root(tmp_path_factory) -> Path:
    """Student dataset 906 ("Soft"): 4 strong and 4 pseudo cases (soft targets), ``3d_tiny``."""
    from tests.factories.student_factory import plan_student_dataset

    root = tmp_path_factory.mktemp("student")
    with pytest.MonkeyPatch.context() as mp:
        set_roots(mp, root, create=True)
        plan_student_dataset(root, STUDENT_ID, "Soft", 4, 4, TARGET_SPACING, 5)
    return root


@pytest.fixture(scope="session")
def dual_root(tmp_path_factory) -> Path:
    """Dual-decoder student dataset 908 ("Dual"): strong and pseudo cases with annotated segboxes."""
    from tests.factories.dual_factory import plan_dual_student_dataset

    root = tmp_path_factory.mktemp("dual")
    with pytest.MonkeyPatch.context() as mp:
        set_roots(mp, root, create=True)
        plan_dual_student_dataset(root, DUAL_ID, DUAL_NAME, TARGET_SPACING)
    return root


@pytest.fixture
def in_root(monkeypatch):
    """``in_root(root)`` points this process's nnU-Net at ``root`` for one test."""
    return lambda root: set_roots(monkeypatch, root)



@pytest.fixture
def unloaded_model(ct_model, monkeypatch) -> Path:
    """``ct_model``'s folder, with ``nnunet_ts predict``'s network loading replaced by an InputError whose
    message is :data:`MODEL_LOAD_REACHED`: a test sees whether a command got as far as loading the model
    (bad input must be reported before it). Tests using it run in the ``ct_model`` xdist group."""
    from nnunet_ts.errors import InputError
    from nnunet_ts.inference import predict

    def reached(*args, **kwargs):
        raise InputError(MODEL_LOAD_REACHED)

    monkeypatch.setattr(predict, "load_predictor", reached)
    return ct_model.folder
