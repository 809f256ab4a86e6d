"""Evaluation metrics of the paper: per-case DSC, DSC-TP and lesion-level precision/recall/F1.

Pure numpy/cc3d functions on arrays; no file IO (folders are handled by ``nnunet_ts.evaluation.folder``).
All arrays are 3D in SimpleITK's numpy order ``(z, y, x)``; spacing is ``(z, y, x)`` in mm and every
volume is in mm^3 (number of voxels times the voxel volume, so anisotropic spacing counts: 10 voxels
at spacing (5, 1, 1) mm are 50 mm^3).

Definitions, applied per case in this order (see ``docs/method.md`` "Evaluation"):

1. **Binarise the prediction.** An integer or boolean image is a label map: foreground is
   ``label > 0``. A floating-point image is a probability map: foreground is
   ``value >= threshold`` (default 0.5, the paper's), so a float image holding 0/1 labels works too.
   The ground truth is binary: foreground is ``label > 0``.
2. **Largest component** (optional, ``largest_component=True``): keep only the largest 3D connected
   component of the binarised prediction (ties: the first in (z, y, x) scan order). Applied before
   everything else, DSC included.
3. **DSC** = 2|P∩G| / (|P| + |G|) on the prediction of steps 1-2, *before* the small-component
   removal of step 4. Convention: 1.0 when prediction and ground truth are both empty; 0.0 when
   exactly one of them is empty.
4. **Small predicted components**: predicted 3D connected components with a volume
   < ``min_lesion_mm3`` (default 100 mm^3) are dropped; a component of exactly ``min_lesion_mm3``
   is kept. Everything below uses this filtered prediction.
5. **Lesion matching** with ``overlap`` t (default 0.25). A lesion is a 3D connected component of
   the ground truth (``connectivity`` 26 by default, the same connectivity for predictions).

   * A ground-truth lesion is *found* (TP) when the filtered prediction covers >= t of its voxels,
     otherwise *missed* (FN).
   * A predicted component is a *false positive* (FP) when < t of its own voxels lie in the
     ground-truth foreground (the symmetric rule).

   TP counts found ground-truth lesions and FP counts predicted components, so one component that
   covers a small lesion but lies mostly outside the ground truth makes one TP *and* one FP.
6. **precision** = TP / (TP + FP), *undefined* (NaN) when TP + FP == 0 (no predicted component
   counted: an empty prediction, or only components inside the ground truth too small to find a
   lesion); **recall** = TP / (TP + FN), undefined (NaN) when the ground truth has no lesion;
   **F1** = 2TP / (2TP + FP + FN) (= 2PR / (P + R) where both are defined), undefined (NaN) when
   TP + FP + FN == 0, i.e. an empty prediction of a tumour-free case. An empty prediction is not
   a perfect one: on a tumour-free case it has no precision, recall or F1 to average (report its
   false positives instead: ``fp``), and on a case with tumour its F1 is 0.
7. **DSC-TP**: Dice between the ground truth restricted to the found lesions and the filtered
   prediction restricted to the components that touch (share a voxel with) a found lesion. NaN
   when the case has no TP. :func:`summarize` excludes every NaN (undefined metric) from the mean
   and reports the count n per metric.

Per case also: ``n_gt_lesions``, ``n_pred_lesions`` (after filtering), ``gt_volume_mm3`` and
``pred_volume_mm3`` (the prediction the DSC sees: after steps 1-2, before filtering).

:func:`summarize` gives, per metric, the mean, the *population* standard deviation (ddof=0), the
median and n (number of non-NaN cases), plus TP/FP/FN pooled over cases. Precision, recall and F1
are per case (per patient in the paper) and then averaged, as in the paper.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields

import numpy as np

from nnunet_ts.boxes.segbox import label_lesions, occupied_bounds

CONNECTIVITIES = (6, 18, 26)
# The per-case metrics summarize() averages (counts and volumes are per-case descriptors).
SUMMARY_METRICS = ("dsc", "dsc_tp", "precision", "recall", "f1")


@dataclass(frozen=True)
class EvaluationSettings:
    """How predictions are scored; defaults are the paper's.

    Raises:
        ValueError: a value outside its range (checked at construction).
    """

    # Probability maps (float images): foreground is value >= threshold. Label maps ignore it.
    threshold: float = 0.5
    # Predicted components below this volume (mm^3) are dropped before lesion-level counting.
    min_lesion_mm3: float = 100.0
    # Fraction of a lesion's (component's) voxels that must be covered to count as found (not FP).
    overlap: float = 0.25
    # 3D voxel connectivity (6 faces, 18 +edges, 26 +corners) for lesions and components.
    connectivity: int = 26
    # Keep only the largest predicted component before anything else (the paper's post-processing).
    largest_component: bool = False

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold < 1.0:
            raise ValueError(f"threshold must be in (0, 1), got {self.threshold}")
        if not (math.isfinite(self.min_lesion_mm3) and self.min_lesion_mm3 >= 0.0):
            raise ValueError(f"min_lesion_mm3 must be a finite number >= 0, got {self.min_lesion_mm3}")
        if not 0.0 < self.overlap <= 1.0:
            raise ValueError(f"overlap must be in (0, 1], got {self.overlap}")
        if self.connectivity not in CONNECTIVITIES:
            raise ValueError(f"connectivity must be one of {CONNECTIVITIES}, got {self.connectivity}")
        if not isinstance(self.largest_component, (bool, np.bool_)):
            raise ValueError(f"largest_component must be True or False, got {self.largest_component!r}")

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class CaseMetrics:
    """Metrics of one case (definitions in the module docstring). Volumes in mm^3."""

    dsc: float
    dsc_tp: float  # NaN when tp == 0
    precision: float  # NaN when tp + fp == 0
    recall: float  # NaN when the ground truth has no lesion
    f1: float  # NaN when tp + fp + fn == 0
    tp: int
    fp: int
    fn: int
    n_gt_lesions: int
    n_pred_lesions: int
    gt_volume_mm3: float
    pred_volume_mm3: float

    def as_dict(self) -> dict:
        return asdict(self)


CASE_METRIC_NAMES: tuple[str, ...] = tuple(f.name for f in fields(CaseMetrics))


def binarize_prediction(pred: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Foreground of a prediction: ``label > 0`` for integer/bool, ``value >= threshold`` for float."""
    pred = np.asarray(pred)
    if pred.dtype == bool:
        return pred
    if np.issubdtype(pred.dtype, np.integer):
        return pred > 0
    if np.issubdtype(pred.dtype, np.floating):
        return pred >= threshold
    raise ValueError(f"prediction must be an integer label map or a float probability map, "
                     f"got dtype {pred.dtype}")


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """2|A∩B| / (|A| + |B|) of two binary arrays; 1.0 when both are empty."""
    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    total = int(a.sum()) + int(b.sum())
    if total == 0:
        return 1.0
    return 2.0 * int(np.logical_and(a, b).sum()) / total


def keep_largest_component(mask: np.ndarray, connectivity: int = 26) -> np.ndarray:
    """The largest 3D connected component of a binary mask (ties: first in scan order)."""
    labels, n = label_lesions(mask, connectivity)
    if n <= 1:
        return labels > 0
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    sizes[0] = 0
    return labels == int(np.argmax(sizes))


def drop_small_components(mask: np.ndarray, spacing_zyx: Sequence[float], min_volume_mm3: float,
                          connectivity: int = 26) -> tuple[np.ndarray, int]:
    """Label the components of a binary mask and drop those with volume < ``min_volume_mm3``.

    Returns:
        (labels (z, y, x) numbered 1..n without gaps, n) of the kept components.
    """
    labels, n = label_lesions(mask, connectivity)
    if n == 0 or min_volume_mm3 <= 0:
        return labels, n
    volumes = np.bincount(labels.ravel(), minlength=n + 1) * _voxel_volume(spacing_zyx)
    keep = volumes >= min_volume_mm3
    keep[0] = False
    n_kept = int(keep.sum())
    if n_kept == n:
        return labels, n
    relabel = np.zeros(n + 1, dtype=labels.dtype)
    relabel[keep] = np.arange(1, n_kept + 1, dtype=labels.dtype)
    return relabel[labels], n_kept


def evaluate_case(pred: np.ndarray, gt: np.ndarray, spacing_zyx: Sequence[float],
                  settings: EvaluationSettings = EvaluationSettings()) -> CaseMetrics:
    """Metrics of one case; see :func:`case_metrics` (this takes the settings as one object)."""
    pred, gt = np.asarray(pred), np.asarray(gt)
    if pred.ndim != 3 or pred.shape != gt.shape:
        raise ValueError(f"prediction and ground truth must be 3D arrays of the same shape (z, y, x), "
                         f"got {pred.shape} and {gt.shape}")
    voxel_mm3 = _voxel_volume(spacing_zyx)
    conn = settings.connectivity

    # Cropping to the bounding box of all foreground changes no component and saves most of the
    # labelling time on a full CT.
    pred_mask, gt_mask = _crop_to_foreground(binarize_prediction(pred, settings.threshold), gt > 0)
    if settings.largest_component:
        pred_mask = keep_largest_component(pred_mask, conn)
    dsc = dice(pred_mask, gt_mask)

    pred_labels, n_pred = drop_small_components(pred_mask, spacing_zyx, settings.min_lesion_mm3, conn)
    gt_labels, n_gt = label_lesions(gt_mask, conn)
    pred_kept = pred_labels > 0

    # Fractions are compared as divisions so that a boundary like 1/4 vs 0.25 is exact.
    gt_sizes = np.bincount(gt_labels.ravel(), minlength=n_gt + 1)[1:]
    gt_covered = np.bincount(gt_labels[pred_kept], minlength=n_gt + 1)[1:]
    found = gt_covered / np.maximum(gt_sizes, 1) >= settings.overlap  # (n_gt,)
    pred_sizes = np.bincount(pred_labels.ravel(), minlength=n_pred + 1)[1:]
    pred_inside = np.bincount(pred_labels[gt_mask], minlength=n_pred + 1)[1:]
    false_positive = pred_inside / np.maximum(pred_sizes, 1) < settings.overlap  # (n_pred,)

    tp, fp = int(found.sum()), int(false_positive.sum())
    fn = n_gt - tp
    precision = tp / (tp + fp) if tp + fp else math.nan
    recall = tp / (tp + fn) if tp + fn else math.nan
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else math.nan

    dsc_tp = math.nan
    if tp:
        is_found = np.concatenate([[False], found])  # lookup by GT label
        gt_tp = is_found[gt_labels]
        touching = np.zeros(n_pred + 1, dtype=bool)
        touching[np.unique(pred_labels[gt_tp & pred_kept])] = True
        touching[0] = False
        dsc_tp = dice(touching[pred_labels], gt_tp)

    return CaseMetrics(
        dsc=float(dsc), dsc_tp=float(dsc_tp), precision=float(precision), recall=float(recall),
        f1=float(f1), tp=tp, fp=fp, fn=fn, n_gt_lesions=n_gt, n_pred_lesions=n_pred,
        gt_volume_mm3=float(gt_mask.sum()) * voxel_mm3,
        pred_volume_mm3=float(pred_mask.sum()) * voxel_mm3)


def case_metrics(pred: np.ndarray, gt: np.ndarray, spacing_zyx: Sequence[float], *,
                 threshold: float = 0.5, min_lesion_mm3: float = 100.0, overlap: float = 0.25,
                 connectivity: int = 26, largest_component: bool = False) -> CaseMetrics:
    """DSC, DSC-TP and lesion-level precision/recall/F1 of one case (module docstring).

    Args:
        pred: prediction (z, y, x): integer label map (foreground > 0) or float probability map
            (foreground >= ``threshold``).
        gt: ground truth (z, y, x), foreground > 0; same shape as ``pred``.
        spacing_zyx: voxel spacing in mm, (z, y, x) order (``Geometry.spacing_zyx``).
        threshold, min_lesion_mm3, overlap, connectivity, largest_component: see
            :class:`EvaluationSettings`.

    Raises:
        ValueError: shapes differ or are not 3D, bad spacing, or a setting out of range.
    """
    settings = EvaluationSettings(threshold=threshold, min_lesion_mm3=min_lesion_mm3,
                                  overlap=overlap, connectivity=connectivity,
                                  largest_component=largest_component)
    return evaluate_case(pred, gt, spacing_zyx, settings)


def summarize(cases: Iterable[CaseMetrics | Mapping[str, float]]) -> dict:
    """Mean, population std (ddof=0), median and n (non-NaN cases) of each metric, plus pooled counts.

    Returns:
        ``{"n_cases", "n_cases_without_tp", "metrics": {name: {"mean", "std", "median", "n"}},
        "pooled": {"tp", "fp", "fn"}}``; a statistic over zero cases is None.
    """
    rows = [c.as_dict() if isinstance(c, CaseMetrics) else dict(c) for c in cases]
    metrics = {}
    for name in SUMMARY_METRICS:
        values = np.asarray([float(r[name]) for r in rows], dtype=float)
        values = values[~np.isnan(values)]
        if values.size == 0:
            metrics[name] = {"mean": None, "std": None, "median": None, "n": 0}
        else:
            metrics[name] = {"mean": float(values.mean()), "std": float(values.std(ddof=0)),
                             "median": float(np.median(values)), "n": int(values.size)}
    return {
        "n_cases": len(rows),
        "n_cases_without_tp": sum(1 for r in rows if int(r["tp"]) == 0),
        "metrics": metrics,
        "pooled": {k: int(sum(int(r[k]) for r in rows)) for k in ("tp", "fp", "fn")},
    }


def _crop_to_foreground(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both masks cropped to the bounding box of their union (an empty (0, 0, 0) box if none)."""
    box = occupied_bounds(a | b) or (slice(0, 0),) * 3
    return a[box], b[box]


def _voxel_volume(spacing_zyx: Sequence[float]) -> float:
    spacing = np.asarray(spacing_zyx, dtype=float)
    if spacing.shape != (3,) or not np.all(np.isfinite(spacing)) or np.any(spacing <= 0):
        raise ValueError(f"spacing must be three positive numbers (z, y, x) in mm, got {spacing_zyx}")
    return float(np.prod(spacing))
