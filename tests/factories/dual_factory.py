"""A student dataset for the dual-decoder student: ``student_factory``'s cases, pseudo cases with segboxes.

A pseudo case's annotated segbox is the segbox of its true mask (what a reader would draw), not of
its pseudo-label (the blurred mask's 0.5 level), so the two can be told apart.
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from nnunet_ts.boxes.segbox import segbox_from_mask
from nnunet_ts.datasets.student import write_student_dataset
from nnunet_ts.io.images import write_image
from tests.factories.case_factory import GEOMETRY, make_mask
from tests.factories.student_factory import plan_written_dataset, write_student_cases


def write_dual_student_dataset(folder: Path, dataset_id: int, name: str, raw_root: Path,
                               n_strong: int = 4, n_pseudo: int = 4) -> Path:
    """Strong cases with masks, pseudo cases with soft targets and annotated segboxes; returns the raw folder."""
    cases = write_student_cases(folder, n_strong, n_pseudo)
    for i, case in enumerate(cases):
        if case.source == "pseudo":
            path = folder / f"{case.case_id}_segbox.nii.gz"
            write_image(path, segbox_from_mask(make_mask(i)), GEOMETRY)
            cases[i] = dataclasses.replace(case, segbox=path)
    return write_student_dataset(cases, dataset_id, name, raw_root, num_folds=2)


def plan_dual_student_dataset(root: Path, dataset_id: int, name: str, spacing) -> None:
    """Write the dual student dataset, then ``student_factory.plan_written_dataset``. nnUNet_* variables
    set by the caller."""
    raw = write_dual_student_dataset(root / "cases", dataset_id, name, Path(os.environ["nnUNet_raw"]))
    plan_written_dataset(dataset_id, raw, spacing)
