"""A student dataset for the dual-decoder student: ``student_factory``'s cases, pseudo cases with segboxes.

A pseudo case's annotated segbox is the segbox of its true mask (what a reader would draw), not of
its pseudo-label (the blurred mask's 0.5 level), so the two can be told apart.
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from case_factory import GEOMETRY, make_mask
from nnunet_ts.cli.main import main
from nnunet_ts.image_io import write_image
from nnunet_ts.segbox import segbox_from_mask
from nnunet_ts.student_dataset import write_student_dataset
from student_factory import write_student_cases


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
    """Write, plan 3d_fullres at ``spacing`` (mm, nnU-Net's axis order), preprocess, install the splits,
    add ``3d_tiny`` (patch 16 x 32 x 32). nnUNet_* variables set by the caller."""
    from nnunetv2.experiment_planning.plan_and_preprocess_api import (
        extract_fingerprints, plan_experiment_dataset, preprocess_dataset)

    raw = write_dual_student_dataset(root / "cases", dataset_id, name, Path(os.environ["nnUNet_raw"]))
    extract_fingerprints([dataset_id], num_processes=1, check_dataset_integrity=True)
    da_workers = os.environ.pop("nnUNet_n_proc_DA", None)  # nnU-Net 2.8.1's planner fails with 0
    try:
        _, plans_identifier = plan_experiment_dataset(dataset_id, overwrite_target_spacing=spacing)
    finally:
        if da_workers is not None:
            os.environ["nnUNet_n_proc_DA"] = da_workers
    preprocess_dataset(dataset_id, plans_identifier, configurations=["3d_fullres"], num_processes=[1])
    preprocessed = Path(os.environ["nnUNet_preprocessed"]) / raw.name
    (preprocessed / "splits_final.json").write_text((raw / "splits_final.json").read_text())
    assert main(["tiny-plans", "-d", str(dataset_id), "--patch", "16", "32", "32"]) == 0
