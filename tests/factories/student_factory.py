"""Student cases for tests: strong cases with masks, pseudo cases with smooth soft targets.

Built on ``case_factory`` (16 x 32 x 32 voxels, cube tumours). A pseudo case's soft target is its
mask blurred (Gaussian, sigma 1.5 voxels): a smooth probability map whose 0.5 level lies near the
mask's border; its hard mask is left to the writer (soft >= 0.5). ``zero_border_case`` gets two axial
slices of exactly 0 in its CT, so nnU-Net's crop to the nonzero region really crops it.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from scipy import ndimage

from nnunet_ts.cli.main import main
from nnunet_ts.datasets.student import StudentCase, write_student_dataset
from nnunet_ts.io.images import write_image
from tests.factories.case_factory import GEOMETRY, make_ct, make_mask


def soft_target_of(mask: np.ndarray) -> np.ndarray:
    soft = ndimage.gaussian_filter(mask.astype(np.float32), sigma=1.5)
    return np.clip(soft / max(float(soft.max()), 1e-6), 0.0, 1.0).astype(np.float32)


def write_student_cases(folder: Path, n_strong: int = 4, n_pseudo: int = 4,
                        zero_border_case: int | None = None) -> list[StudentCase]:
    """Write CTs, masks and soft targets into ``folder``; returns the cases (two per patient)."""
    folder.mkdir(parents=True, exist_ok=True)
    cases = []
    for i in range(n_strong + n_pseudo):
        case_id = f"case_{i:03d}"
        mask = make_mask(i)
        ct = make_ct(mask, i)
        if i == zero_border_case:
            ct[:2] = 0
        ct_path = folder / f"{case_id}_ct.nii.gz"
        write_image(ct_path, ct, GEOMETRY)
        patient = f"patient_{i // 2:03d}"
        if i < n_strong:
            mask_path = folder / f"{case_id}_mask.nii.gz"
            write_image(mask_path, mask, GEOMETRY)
            cases.append(StudentCase(case_id, ct_path, "strong", mask=mask_path, patient_id=patient))
        else:
            soft_path = folder / f"{case_id}_soft.nii.gz"
            write_image(soft_path, soft_target_of(mask), GEOMETRY)
            cases.append(StudentCase(case_id, ct_path, "pseudo", soft_target=soft_path, patient_id=patient))
    return cases


def plan_student_dataset(root: Path, dataset_id: int, name: str, n_strong: int, n_pseudo: int,
                         spacing, zero_border_case: int | None = None) -> None:
    """Write a student dataset, then :func:`plan_written_dataset`. nnUNet_* variables set by the caller."""
    cases = write_student_cases(root / "cases", n_strong, n_pseudo, zero_border_case)
    raw = write_student_dataset(cases, dataset_id, name, os.environ["nnUNet_raw"], num_folds=2)
    plan_written_dataset(dataset_id, Path(raw), spacing)


def plan_written_dataset(dataset_id: int, raw: Path, spacing) -> None:
    """Plan the raw dataset ``raw`` for 3d_fullres at ``spacing`` (nnU-Net's axis order, mm), preprocess
    it, install its splits and add ``3d_tiny`` (patch 16 x 32 x 32). nnUNet_* variables set by the caller."""
    from nnunetv2.experiment_planning.plan_and_preprocess_api import (
        extract_fingerprints,
        plan_experiment_dataset,
        preprocess_dataset,
    )

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
