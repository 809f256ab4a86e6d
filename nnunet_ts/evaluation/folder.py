"""Evaluate a folder of predictions against a folder of ground-truth masks.

Cases are paired by file name: ``<case_id><file_ending>`` in both folders (nnU-Net's naming, e.g.
``lung_001.nii.gz`` in the prediction folder and in ``labelsTr``). Other files are ignored.

* A prediction without a ground truth is an error (it is probably a wrong folder or name).
* A ground truth without a prediction is an error, unless ``allow_missing``: then the missing
  prediction counts as empty (DSC 0 when the ground truth has tumour, every lesion missed); the
  cases are listed in the summary under ``missing_predictions``.
* Prediction and ground truth must share the voxel grid (shape, spacing, origin, direction).

Outputs in ``out_dir`` (default: the prediction folder), written atomically (temp file + rename)
and never over existing files unless ``overwrite``:

* ``evaluation_per_case.csv``: one row per case, columns ``case_id``, the metrics of
  :class:`nnunet_ts.evaluation.metrics.CaseMetrics` and ``prediction_missing``; NaN is written as ``nan``.
* ``evaluation_summary.json``: the settings and folders used and :func:`nnunet_ts.evaluation.metrics.summarize`
  (mean, population std (ddof=0), median, n per metric; pooled TP/FP/FN). NaN/undefined is null.

Metric definitions: :mod:`nnunet_ts.evaluation.metrics`.
"""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np

from nnunet_ts.errors import InputError
from nnunet_ts.evaluation.metrics import (
    CASE_METRIC_NAMES,
    SUMMARY_METRICS,
    EvaluationSettings,
    evaluate_case,
    summarize,
)
from nnunet_ts.io.atomic import write_text_atomic
from nnunet_ts.io.images import check_same_geometry, read_image

PER_CASE_NAME = "evaluation_per_case.csv"
SUMMARY_NAME = "evaluation_summary.json"


def find_cases(folder: Path, file_ending: str) -> dict[str, Path]:
    """``{case_id: path}`` of the files in ``folder`` named ``<case_id><file_ending>``."""
    return {p.name[:-len(file_ending)]: p for p in sorted(Path(folder).iterdir())
            if p.is_file() and p.name.endswith(file_ending) and len(p.name) > len(file_ending)}


def pair_cases(pred_dir: Path, gt_dir: Path, file_ending: str = ".nii.gz",
               allow_missing: bool = False) -> list[tuple[str, Path | None, Path]]:
    """``[(case_id, prediction path or None when missing, ground-truth path)]`` sorted by case id.

    Raises:
        InputError: a folder is missing or holds no case, a prediction has no ground truth, or a
            ground truth has no prediction (unless ``allow_missing``).
    """
    for what, folder in (("prediction folder", pred_dir), ("ground-truth folder", gt_dir)):
        if not Path(folder).is_dir():
            raise InputError(f"{what} {folder} does not exist or is not a folder")
    preds, gts = find_cases(pred_dir, file_ending), find_cases(gt_dir, file_ending)
    if not gts:
        raise InputError(f"ground-truth folder {gt_dir} has no file ending in {file_ending!r}; "
                         f"point --gt at the masks (e.g. labelsTr) or set --file-ending")
    if not preds and not allow_missing:
        raise InputError(f"prediction folder {pred_dir} has no file ending in {file_ending!r}; "
                         f"point --pred at the predictions or set --file-ending")
    orphans = sorted(set(preds) - set(gts))
    if orphans:
        raise InputError(f"prediction {preds[orphans[0]]} has no ground truth "
                         f"{Path(gt_dir) / (orphans[0] + file_ending)}"
                         + (f" (nor do {len(orphans) - 1} more: {_listing(orphans[1:])})"
                            if len(orphans) > 1 else "")
                         + "; check --gt, or move predictions of other cases out of the folder")
    missing = sorted(set(gts) - set(preds))
    if missing and not allow_missing:
        raise InputError(f"{len(missing)} case(s) in {gt_dir} have no prediction in {pred_dir}: "
                         f"{_listing(missing)}; predict them, or pass --allow-missing to count "
                         f"them as empty predictions")
    return [(case, preds.get(case), gts[case]) for case in sorted(gts)]


def evaluate_folders(pred_dir: str | Path, gt_dir: str | Path, out_dir: str | Path | None = None, *,
                     settings: EvaluationSettings | None = None, file_ending: str = ".nii.gz",
                     allow_missing: bool = False, overwrite: bool = False, progress: bool = True,
                     **setting_values) -> dict:
    """Score every prediction in ``pred_dir`` against ``gt_dir`` and write the two output files.

    Args:
        pred_dir: predictions, label maps or probability maps (see :mod:`nnunet_ts.evaluation.metrics`).
        gt_dir: binary ground-truth masks with the same file names.
        out_dir: where the outputs go (created if needed); default ``pred_dir``.
        settings: an :class:`EvaluationSettings`, or give its fields as keywords instead
            (``threshold=0.5, min_lesion_mm3=100, overlap=0.25, connectivity=26,
            largest_component=False``).
        file_ending: how case files end.
        allow_missing: count ground truths without prediction as empty predictions.
        overwrite: replace existing output files.
        progress: show a progress bar (stderr).

    Returns:
        The summary written to ``evaluation_summary.json``.

    Raises:
        InputError: missing/extra cases, unreadable images, grid mismatch, outputs exist.
    """
    if settings is None:
        settings = EvaluationSettings(**setting_values)
    elif setting_values:
        raise ValueError("give either settings or its fields as keywords, not both")
    pred_dir, gt_dir = Path(pred_dir), Path(gt_dir)
    out_dir = pred_dir if out_dir is None else Path(out_dir)
    outputs = (out_dir / PER_CASE_NAME, out_dir / SUMMARY_NAME)
    existing = [str(p) for p in outputs if p.exists()]
    if existing and not overwrite:
        raise InputError(f"{' and '.join(existing)} already exist(s); pass --overwrite to replace, "
                         f"or choose another --out")
    pairs = pair_cases(pred_dir, gt_dir, file_ending, allow_missing)

    from tqdm import tqdm

    rows = []
    for case, pred_path, gt_path in tqdm(pairs, desc="evaluate", unit="case", disable=not progress):
        gt, gt_geometry = read_image(gt_path, "ground truth")
        if pred_path is None:
            pred = np.zeros(gt.shape, dtype=np.uint8)
        else:
            pred, pred_geometry = read_image(pred_path, "prediction")
            check_same_geometry(gt_geometry, gt_path, pred_geometry, pred_path)
        metrics = evaluate_case(pred, gt, gt_geometry.spacing_zyx, settings)
        rows.append({"case_id": case, **metrics.as_dict(), "prediction_missing": pred_path is None})

    summary = {
        "pred_dir": str(pred_dir.resolve()),
        "gt_dir": str(gt_dir.resolve()),
        "file_ending": file_ending,
        "settings": settings.as_dict(),
        "allow_missing": allow_missing,
        "missing_predictions": [r["case_id"] for r in rows if r["prediction_missing"]],
        "std": "population standard deviation (ddof=0)",
        "dsc_tp_note": "cases without a true-positive lesion have no DSC-TP and are left out of "
                       "its statistics (n_cases_without_tp)",
        **summarize(rows),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(outputs[0], _per_case_csv(rows))
    write_text_atomic(outputs[1], json.dumps(_nan_to_none(summary), indent=2, allow_nan=False) + "\n")
    return summary


def format_summary(summary: dict) -> str:
    """A short table: mean ± std (population), median and n per metric, then pooled counts."""
    lines = [f"{'metric':<10} {'mean ± std':>17} {'median':>8} {'n':>5}"]
    for name in SUMMARY_METRICS:
        s = summary["metrics"][name]
        if s["n"] == 0:
            lines.append(f"{name:<10} {'-':>17} {'-':>8} {0:>5}")
        else:
            lines.append(f"{name:<10} {s['mean']:>8.4f} ± {s['std']:<6.4f} {s['median']:>8.4f} "
                         f"{s['n']:>5}")
    pooled = summary["pooled"]
    lines.append(f"{summary['n_cases']} cases ({summary['n_cases_without_tp']} without a true "
                 f"positive); pooled lesions TP {pooled['tp']}, FP {pooled['fp']}, FN {pooled['fn']}")
    return "\n".join(lines)


def _per_case_csv(rows: list[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=["case_id", *CASE_METRIC_NAMES, "prediction_missing"],
                            lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (repr(v) if isinstance(v, float) else v) for k, v in row.items()})
    return buffer.getvalue()


def _nan_to_none(value):
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, dict):
        return {k: _nan_to_none(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_nan_to_none(v) for v in value]
    return value


def _listing(names: list[str], limit: int = 10) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names) - limit} more)" if len(names) > limit else "")
