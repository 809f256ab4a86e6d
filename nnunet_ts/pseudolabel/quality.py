"""Quality figures of one pseudo label (the teacher's probability map of a weak case) and its flags.

A pseudo label is suspect when the teacher found nothing in a box (``empty``) or put most of its
probability outside the boxes it was given (``outside_box``: the annotation and the prediction
disagree on where the tumour is). Flagged cases can be left out of the student dataset.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FLAGS = ("empty", "outside_box")


@dataclass(frozen=True)
class QualitySettings:
    """Attributes:
        threshold: probability from which a voxel counts as predicted tumour.
        min_mass_in_box: flag ``outside_box`` below this share of probability mass inside the box.
    """

    threshold: float = 0.5
    min_mass_in_box: float = 0.5


def pseudo_label_quality(probability: np.ndarray, segbox: np.ndarray, voxel_volume_mm3: float,
                         settings: QualitySettings = QualitySettings()) -> dict:
    """Figures of one case. ``probability`` and ``segbox`` are (z, y, x) on the same grid.

    Returns a dict: ``predicted_volume_mm3`` (voxels >= threshold), ``box_volume_mm3``,
    ``mass_in_box`` (share of the summed probability inside the segbox; NaN when the map is all 0),
    ``mean_confidence`` (mean probability over the predicted voxels; NaN when none), ``flags``
    (list of names from ``FLAGS``).
    """
    probability, box = _where_nonzero(np.asarray(probability), np.asarray(segbox) > 0.5)
    predicted = probability >= settings.threshold
    total = float(probability.sum(dtype=np.float64))
    mass_in_box = float(probability[box].sum(dtype=np.float64)) / total if total > 0 else float("nan")
    mean_confidence = float(probability[predicted].mean(dtype=np.float64)) if predicted.any() else float("nan")
    flags = []
    if not predicted.any():
        flags.append("empty")
    if total > 0 and mass_in_box < settings.min_mass_in_box:
        flags.append("outside_box")
    return {"predicted_volume_mm3": float(predicted.sum()) * voxel_volume_mm3,
            "box_volume_mm3": float(box.sum()) * voxel_volume_mm3,
            "mass_in_box": mass_in_box, "mean_confidence": mean_confidence, "flags": flags}


def _where_nonzero(probability: np.ndarray, box: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both arrays cut to the bounding box of the voxels with probability or box (views): every figure
    is a sum or count over those, and a clinical CT's map is 0 outside a few boxes (ROI mode)."""
    from nnunet_ts.boxes.segbox import occupied_bounds

    cut = occupied_bounds((probability != 0) | box) or (slice(0, 0),) * 3
    return probability[cut], box[cut]


def summarize(records: dict[str, dict]) -> dict:
    """Counts per flag and medians over cases of the quality records {case: record}."""
    def median(key):
        values = [r[key] for r in records.values() if r[key] == r[key]]
        return float(np.median(values)) if values else float("nan")

    return {"cases": len(records),
            "flagged": {flag: sorted(c for c, r in records.items() if flag in r["flags"]) for flag in FLAGS},
            "median_predicted_volume_mm3": median("predicted_volume_mm3"),
            "median_mass_in_box": median("mass_in_box"),
            "median_mean_confidence": median("mean_confidence")}
