"""The demo's two held-out sets: validation (for design choices) and test (for the final tables only).

The held-out (``test`` subset) cases of the case manifest are split *by patient*: a patient's cases are
all in one set. Every network predicts both sets in one pass; the report takes each number from the set
it names. ``OUT/sets.json`` records the split::

    {"validation": ["case_a", ...], "test": ["case_b", ...], "seed": 0, "validation_fraction": 0.333}

No torch here.
"""
from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import numpy as np

SETS = ("validation", "test")


def split_held_out(records: Iterable, validation_fraction: float, seed: int = 0) -> dict[str, list[str]]:
    """``{"validation": [case ids], "test": [case ids]}`` of the manifest's ``test`` subset, by patient.

    ``round(validation_fraction * number of held-out patients)`` patients, drawn with
    ``numpy.random.default_rng(seed)``, form the validation set; at least one patient stays in the test
    set. Case ids are sorted within each set.

    Raises:
        ValueError: no held-out case, or a fraction outside [0, 1).
    """
    if not 0.0 <= validation_fraction < 1.0:
        raise ValueError(f"validation_fraction must be in [0, 1), got {validation_fraction}")
    by_patient: dict[str, list[str]] = {}
    for r in records:
        if r.subset == "test":
            by_patient.setdefault(r.patient_id, []).append(r.case_id)
    if not by_patient:
        raise ValueError("the case manifest has no held-out (test) case")
    patients = sorted(by_patient)
    n_validation = min(int(round(validation_fraction * len(patients))), len(patients) - 1)
    chosen = set(np.random.default_rng(seed).permutation(len(patients))[:n_validation].tolist())
    split = {name: [] for name in SETS}
    for i, patient in enumerate(patients):
        split["validation" if i in chosen else "test"] += by_patient[patient]
    return {name: sorted(cases) for name, cases in split.items()}


def write_sets(path: Path, split: dict[str, list[str]], seed: int, validation_fraction: float) -> None:
    Path(path).write_text(json.dumps({**split, "seed": seed, "validation_fraction": validation_fraction},
                                     indent=1))


def read_sets(path: Path) -> dict[str, list[str]]:
    """``{"validation": [...], "test": [...]}`` from ``sets.json``; an empty dict when it is missing."""
    path = Path(path)
    if not path.is_file():
        return {}
    stored = json.loads(path.read_text())
    return {name: list(stored.get(name, [])) for name in SETS}
