"""nnunet_ts.evaluation.metrics on small hand-built volumes; every expected number is worked out by hand.

Unless a case says otherwise: shape (20, 20, 20), spacing 1 mm (1 voxel = 1 mm^3), defaults
threshold 0.5, min lesion 100 mm^3, overlap 0.25, connectivity 26. A 5^3 cube is 125 voxels.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from nnunet_ts.evaluation.metrics import CASE_METRIC_NAMES, CaseMetrics, EvaluationSettings, case_metrics, summarize

SHAPE = (20, 20, 20)
ISO = (1.0, 1.0, 1.0)
NAN = math.nan


def box(z0, z1, y0, y1, x0, x1, value=1, dtype=np.uint8, base=None):
    """A volume with [z0:z1, y0:y1, x0:x1] set to value (half-open bounds)."""
    out = np.zeros(SHAPE, dtype=dtype) if base is None else base.copy()
    out[z0:z1, y0:y1, x0:x1] = value
    return out


def union(*arrays):
    return np.maximum.reduce(arrays)


EMPTY = np.zeros(SHAPE, np.uint8)
A = box(2, 7, 2, 7, 2, 7)            # lesion A, 125 voxels
B = box(12, 17, 12, 17, 12, 17)      # lesion B, 125 voxels
TINY = box(10, 11, 0, 2, 15, 20)     # 1 x 2 x 5 = 10 voxels, far from A and B
D = box(12, 16, 0, 5, 0, 5)          # 4 x 5 x 5 = 100 voxels, far from A
SLAB = box(0, 4, 0, 10, 0, 10)       # 400 voxels, z 0..3
TOP = box(0, 1, 0, 10, 0, 10)        # 100 voxels, z 0 of SLAB (25 % of it)
TOP_99 = TOP.copy()
TOP_99[0, 0, 0] = 0                  # 99 voxels (24.75 % of SLAB)
SLAB_LOW = box(3, 7, 0, 10, 0, 10)   # 400 voxels, z 3..6: shares z 3 (100 voxels) with SLAB
SLAB_LOW_399 = SLAB_LOW.copy()
SLAB_LOW_399[3, 0, 0] = 0            # shares 99 voxels with SLAB
SMALL = box(5, 7, 5, 7, 5, 7)        # 8 voxels
BLOCK = box(2, 12, 2, 12, 2, 12)     # 1000 voxels containing SMALL
CORNER_PAIR = union(box(0, 2, 0, 2, 0, 2), box(2, 4, 2, 4, 2, 4))  # two 8-voxel cubes, corner touch

# (id, pred, gt, spacing_zyx, kwargs, expected subset of CaseMetrics fields)
CASES = [
    ("empty pred, one lesion", EMPTY, A, ISO, {},
     dict(dsc=0.0, dsc_tp=NAN, precision=NAN, recall=0.0, f1=0.0, tp=0, fp=0, fn=1,
          n_gt_lesions=1, n_pred_lesions=0, gt_volume_mm3=125.0, pred_volume_mm3=0.0)),
    # Nothing to find and nothing predicted: DSC 1 by convention, but no precision, recall or F1
    # (an empty prediction is not a perfect lesion detector).
    ("empty pred, empty gt", EMPTY, EMPTY, ISO, {},
     dict(dsc=1.0, dsc_tp=NAN, precision=NAN, recall=NAN, f1=NAN, tp=0, fp=0, fn=0,
          n_gt_lesions=0, n_pred_lesions=0)),
    ("false positive, empty gt", A, EMPTY, ISO, {},
     dict(dsc=0.0, dsc_tp=NAN, precision=0.0, recall=NAN, f1=0.0, tp=0, fp=1, fn=0,
          n_pred_lesions=1, pred_volume_mm3=125.0)),
    ("perfect, two lesions", union(A, B), union(A, B), ISO, {},
     dict(dsc=1.0, dsc_tp=1.0, precision=1.0, recall=1.0, f1=1.0, tp=2, fp=0, fn=0,
          n_gt_lesions=2, n_pred_lesions=2)),
    # DSC = 2*125 / (125 + 250); F1 = 2*1*0.5 / 1.5.
    ("two lesions, B missed", A, union(A, B), ISO, {},
     dict(dsc=2 / 3, dsc_tp=1.0, precision=1.0, recall=0.5, f1=2 / 3, tp=1, fp=0, fn=1,
          n_gt_lesions=2, n_pred_lesions=1, gt_volume_mm3=250.0)),
    # TINY (10 mm^3) is dropped for lesion counting but the DSC sees it: 2*125 / (135 + 125).
    ("tiny FP dropped", union(A, TINY), A, ISO, {},
     dict(dsc=250 / 260, dsc_tp=1.0, precision=1.0, recall=1.0, f1=1.0, tp=1, fp=0, fn=0,
          n_pred_lesions=1, pred_volume_mm3=135.0)),
    # 10 voxels at (5, 1, 1) mm = 50 mm^3: still dropped.
    ("tiny FP, 50 mm^3", union(A, TINY), A, (5.0, 1.0, 1.0), {},
     dict(dsc=250 / 260, precision=1.0, tp=1, fp=0, n_pred_lesions=1, gt_volume_mm3=625.0,
          pred_volume_mm3=675.0)),
    # 10 voxels at (10, 1, 1) mm = 100 mm^3, not < 100: kept, and a FP. F1 = 2*0.5 / 1.5.
    ("tiny FP, 100 mm^3 kept", union(A, TINY), A, (10.0, 1.0, 1.0), {},
     dict(dsc=250 / 260, dsc_tp=1.0, precision=0.5, recall=1.0, f1=2 / 3, tp=1, fp=1, fn=0,
          n_pred_lesions=2, gt_volume_mm3=1250.0, pred_volume_mm3=1350.0)),
    ("tiny FP, anisotropic x", union(A, TINY), A, (1.0, 1.0, 10.0), {},
     dict(precision=0.5, fp=1, n_pred_lesions=2)),
    ("tiny FP, min volume 0", union(A, TINY), A, ISO, dict(min_lesion_mm3=0.0),
     dict(precision=0.5, fp=1, n_pred_lesions=2)),
    # Coverage of SLAB exactly 100/400 = 25 %: found. DSC = 2*100 / 500.
    ("coverage at 25 %", TOP, SLAB, ISO, {},
     dict(dsc=0.4, dsc_tp=0.4, precision=1.0, recall=1.0, f1=1.0, tp=1, fp=0, fn=0)),
    # 99/400 < 25 %: missed; the component lies in the GT, so it is no FP: precision 0/0, undefined.
    ("coverage just below 25 %", TOP_99, SLAB, ISO, dict(min_lesion_mm3=50.0),
     dict(dsc=198 / 499, dsc_tp=NAN, precision=NAN, recall=0.0, f1=0.0, tp=0, fp=0, fn=1,
          n_pred_lesions=1)),
    # Symmetric rule: 100 of the 400 predicted voxels lie in the GT (25 %): not a FP.
    ("pred 25 % inside gt", SLAB, SLAB_LOW, ISO, {},
     dict(dsc=0.25, dsc_tp=0.25, precision=1.0, recall=1.0, tp=1, fp=0, fn=0)),
    # 99/400 of the prediction in the GT: FP; 99/399 of the lesion covered: missed.
    ("pred just below 25 % inside gt", SLAB, SLAB_LOW_399, ISO, {},
     dict(dsc=198 / 799, dsc_tp=NAN, precision=0.0, recall=0.0, f1=0.0, tp=0, fp=1, fn=1)),
    # One big component covers the small lesion (TP) but is 8/1000 inside it (FP).
    # DSC-TP takes the whole touching component: 2*8 / (1000 + 8).
    ("big blob over small lesion", BLOCK, SMALL, ISO, {},
     dict(dsc=16 / 1008, dsc_tp=16 / 1008, precision=0.5, recall=1.0, f1=2 / 3, tp=1, fp=1,
          fn=0)),
    # Only the found lesion A and the component over it enter DSC-TP: 2*125 / (125 + 250) for the
    # DSC, but 1.0 for DSC-TP, and D (100 voxels, no overlap) is a FP.
    ("DSC-TP ignores FP and FN", union(A, D), union(A, B), ISO, {},
     dict(dsc=250 / 475, dsc_tp=1.0, precision=0.5, recall=0.5, f1=0.5, tp=1, fp=1, fn=1)),
    # Probability maps: foreground is value >= 0.5.
    ("probability map at 0.5", box(12, 17, 12, 17, 12, 17, 0.4999, np.float32,
                                   box(2, 7, 2, 7, 2, 7, 0.5, np.float32)), A, ISO, {},
     dict(dsc=1.0, precision=1.0, recall=1.0, tp=1, fp=0, n_pred_lesions=1)),
    ("probability map, threshold 0.6", box(2, 7, 2, 7, 2, 7, 0.5, np.float32), A, ISO,
     dict(threshold=0.6), dict(dsc=0.0, recall=0.0, n_pred_lesions=0)),
    ("label map with label 2", box(2, 7, 2, 7, 2, 7, 2, np.int16), A, ISO, {},
     dict(dsc=1.0, tp=1)),
    ("ground truth label 2", A, 2 * A, ISO, {}, dict(dsc=1.0, tp=1, gt_volume_mm3=125.0)),
    # Largest component: without it D is a FP (DSC 2*125/(225+125)); with it D is removed.
    ("two components, no LCC", union(A, D), A, ISO, {},
     dict(dsc=250 / 350, precision=0.5, recall=1.0, f1=2 / 3, fp=1, n_pred_lesions=2)),
    ("two components, LCC", union(A, D), A, ISO, dict(largest_component=True),
     dict(dsc=1.0, dsc_tp=1.0, precision=1.0, f1=1.0, fp=0, n_pred_lesions=1,
          pred_volume_mm3=125.0)),
    # Two cubes touching at a corner: one lesion with 26-connectivity, two with 6.
    ("corner touch, 26", EMPTY, CORNER_PAIR, ISO, {}, dict(n_gt_lesions=1, fn=1)),
    ("corner touch, 6", EMPTY, CORNER_PAIR, ISO, dict(connectivity=6), dict(n_gt_lesions=2, fn=2)),
]


@pytest.mark.parametrize("pred, gt, spacing, kwargs, expected",
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_case_metrics(pred, gt, spacing, kwargs, expected):
    result = case_metrics(pred, gt, spacing, **kwargs).as_dict()
    for name, want in expected.items():
        if isinstance(want, float) and math.isnan(want):
            assert math.isnan(result[name]), name
        else:
            assert result[name] == pytest.approx(want, abs=1e-12), name
        assert type(result[name]) is type(want), name


def test_case_metrics_reports_every_field():
    result = case_metrics(A, A, ISO)
    assert isinstance(result, CaseMetrics)
    assert tuple(result.as_dict()) == CASE_METRIC_NAMES
    assert CASE_METRIC_NAMES == ("dsc", "dsc_tp", "precision", "recall", "f1", "tp", "fp", "fn",
                                 "n_gt_lesions", "n_pred_lesions", "gt_volume_mm3",
                                 "pred_volume_mm3")


def test_largest_component_applies_before_dsc_and_keeps_the_biggest():
    # D (100 voxels) is larger than TINY but smaller than A, and A is not in the ground truth.
    result = case_metrics(union(A, D), D, ISO, largest_component=True)
    assert (result.dsc, result.tp, result.fp) == (0.0, 0, 1)


@pytest.mark.parametrize("kwargs", [
    dict(threshold=0.0), dict(threshold=1.0), dict(overlap=0.0), dict(overlap=1.01),
    dict(min_lesion_mm3=-1.0), dict(min_lesion_mm3=math.inf), dict(min_lesion_mm3=math.nan),
    dict(connectivity=8), dict(largest_component="yes"),
])
def test_settings_reject_out_of_range(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        EvaluationSettings(**kwargs)


def test_settings_accept_boundaries():
    s = EvaluationSettings(overlap=1.0, min_lesion_mm3=0.0, connectivity=6)
    assert s.as_dict() == dict(threshold=0.5, min_lesion_mm3=0.0, overlap=1.0, connectivity=6,
                               largest_component=False)


@pytest.mark.parametrize("pred, gt, spacing, match", [
    (A, A[:-1], ISO, "same shape"),
    (A[0], A[0], ISO, "3D"),
    (A, A, (1.0, 1.0), "spacing"),
    (A, A, (1.0, 0.0, 1.0), "spacing"),
])
def test_case_metrics_rejects_bad_input(pred, gt, spacing, match):
    with pytest.raises(ValueError, match=match):
        case_metrics(pred, gt, spacing)


def _row(dsc, dsc_tp, precision, recall, f1, tp, fp, fn):
    return dict(dsc=dsc, dsc_tp=dsc_tp, precision=precision, recall=recall, f1=f1, tp=tp, fp=fp,
                fn=fn)


def test_summarize_known_values_with_nan_excluded():
    rows = [_row(1.0, 1.0, 1.0, 1.0, 1.0, 2, 0, 0),
            _row(0.5, NAN, 1.0, 0.0, 0.0, 0, 0, 3),
            _row(0.0, 0.5, 0.5, 0.5, 0.5, 1, 1, 1)]
    summary = summarize(rows)
    assert summary["n_cases"] == 3
    assert summary["n_cases_without_tp"] == 1
    assert summary["pooled"] == {"tp": 3, "fp": 1, "fn": 4}
    m = summary["metrics"]
    # dsc 1, 0.5, 0: mean 0.5, population std sqrt((0.25 + 0 + 0.25) / 3).
    assert m["dsc"] == pytest.approx({"mean": 0.5, "std": math.sqrt(1 / 6), "median": 0.5, "n": 3})
    # dsc_tp 1, 0.5 (NaN left out): mean 0.75, std 0.25 (ddof=0; ddof=1 would give 0.354).
    assert m["dsc_tp"] == pytest.approx({"mean": 0.75, "std": 0.25, "median": 0.75, "n": 2})
    assert m["precision"] == pytest.approx({"mean": 2.5 / 3, "std": math.sqrt(1 / 18),
                                            "median": 1.0, "n": 3})
    assert m["recall"]["median"] == 0.5


def test_summarize_accepts_case_metrics_and_all_nan():
    summary = summarize([case_metrics(EMPTY, A, ISO), case_metrics(EMPTY, EMPTY, ISO)])
    assert summary["metrics"]["dsc_tp"] == {"mean": None, "std": None, "median": None, "n": 0}
    assert summary["metrics"]["precision"] == {"mean": None, "std": None, "median": None, "n": 0}
    # recall: 0 on the case with a lesion, undefined on the tumour-free one; F1 likewise
    assert summary["metrics"]["recall"] == {"mean": 0.0, "std": 0.0, "median": 0.0, "n": 1}
    assert summary["metrics"]["f1"]["n"] == 1
    assert summary["metrics"]["dsc"]["mean"] == 0.5
    assert summary["pooled"] == {"tp": 0, "fp": 0, "fn": 1}
