"""Cross-validation splits grouped by patient and balanced by tumour volume (as in the paper).

nnU-Net reads ``splits_final.json`` (a list of ``{"train": [...], "val": [...]}``, one per fold)
from the dataset's folder in ``nnUNet_preprocessed``; without it nnU-Net splits cases at random, and
two scans of one patient can then land on both sides of a fold.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def grouped_splits(case_ids: Sequence[str], patient_ids: Sequence[str],
                   tumour_volumes_mm3: Sequence[float], num_folds: int = 5,
                   seed: int = 0) -> list[dict[str, list[str]]]:
    """Assign patients to folds so that no patient is in two folds and folds are balanced.

    Patients are taken by total tumour volume, largest first (ties broken by a seeded shuffle), and
    each goes to the fold with the fewest cases so far, then the smallest volume; this balances the
    number of cases and the tumour-volume distribution over folds.

    Returns:
        ``num_folds`` dicts with sorted ``train`` and ``val`` case id lists.

    Raises:
        ValueError: fewer than 2 folds, lengths differ, or fewer patients than folds.
    """
    if not len(case_ids) == len(patient_ids) == len(tumour_volumes_mm3):
        raise ValueError("case_ids, patient_ids and tumour_volumes_mm3 must have the same length")
    if num_folds < 2:
        raise ValueError(f"num_folds must be >= 2, got {num_folds}")
    cases_of: dict[str, list[str]] = {}
    volume_of: dict[str, float] = {}
    for case, patient, volume in zip(case_ids, patient_ids, tumour_volumes_mm3):
        cases_of.setdefault(patient, []).append(case)
        volume_of[patient] = volume_of.get(patient, 0.0) + float(volume)
    patients = sorted(cases_of)
    if len(patients) < num_folds:
        raise ValueError(f"{len(patients)} patient(s) cannot fill {num_folds} folds; "
                         f"use at most {len(patients)} folds or add cases")
    order = np.random.default_rng(seed).permutation(len(patients))
    shuffled = [patients[i] for i in order]
    shuffled.sort(key=lambda p: -volume_of[p])  # stable: the shuffle breaks ties
    fold_cases: list[list[str]] = [[] for _ in range(num_folds)]
    fold_volume = [0.0] * num_folds
    for patient in shuffled:
        fold = min(range(num_folds), key=lambda f: (len(fold_cases[f]), fold_volume[f], f))
        fold_cases[fold].extend(cases_of[patient])
        fold_volume[fold] += volume_of[patient]
    all_cases = sorted(case_ids)
    return [{"train": sorted(set(all_cases) - set(val)), "val": sorted(val)} for val in fold_cases]
