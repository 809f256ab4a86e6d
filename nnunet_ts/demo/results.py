"""The demo's numbers from per-case evaluations: tables per set, per-seed rows, paired comparisons.

Input: ``per_case[model key][post-processing][seed] = {case: row}``, a row being the metrics of one case
(``evaluation_per_case.csv`` of ``nnunet_ts evaluate``: ``dsc``, ``dsc_tp``, ``precision``, ``recall``, ``f1``,
``fp``, ``gt_volume_mm3``, ...). Plain functions; the report renders what they return.

Definitions (docs/experiments.md, "How the comparison is set up"):

* a network's value on a case is the mean over its training seeds (NaN seeds left out);
* the headline **DSC** is the mean over the set's *tumour-bearing* cases (the paper's setting: every
  test patient has a tumour); tumour-free cases are reported on their own as **false-positive lesions per
  tumour-free case** (an empty prediction there scores DSC 1, which says nothing about segmentation);
* DSC-TP, lesion precision, recall and F1: means over the tumour-bearing cases where they are defined
  (``n`` says how many);
* **comparisons**: each student against the baseline separately (never the better of the two), and the
  box-guided against the CT-only teacher: the mean paired per-case DSC difference on the tumour-bearing
  cases with its paired bootstrap 95 % CI (``nnunet_ts.evaluation.statistics.paired_bootstrap``: cases
  resampled, seeds averaged per case first, RNG seed 0).
"""
from __future__ import annotations

import csv
import math
from pathlib import Path

from nnunet_ts.evaluation.statistics import compare_networks, mean_over_seeds, mean_std

CASE_METRICS = ("dsc", "dsc_tp", "precision", "recall", "f1")
NO_POST = "no_postprocessing"
# (student, reference): what the method claims, each measured on its own
COMPARISONS = (("so_student", "baseline"), ("do_student", "baseline"), ("box_teacher", "ct_only_teacher"))


def read_per_case(path: Path) -> dict[str, dict[str, float]]:
    """``{case: {column: float}}`` of an ``evaluation_per_case.csv`` (``nan`` stays NaN)."""
    with Path(path).open(newline="") as f:
        return {row["case_id"]: {k: float(v) for k, v in row.items() if k not in ("case_id", "prediction_missing")}
                for row in csv.DictReader(f)}


def tumour_cases(per_case: dict, cases: list[str]) -> tuple[list[str], list[str]]:
    """(tumour-bearing, tumour-free) among ``cases``, by the ground-truth volume any evaluation recorded."""
    volume = {}
    for posts in per_case.values():
        for seeds in posts.values():
            for rows in seeds.values():
                for case, row in rows.items():
                    volume.setdefault(case, row["gt_volume_mm3"])
    missing = [c for c in cases if c not in volume]
    if missing:
        raise ValueError(f"no evaluation covers case(s) {missing[:3]}")
    return [c for c in cases if volume[c] > 0], [c for c in cases if volume[c] == 0]


def seed_means(seeds: dict[int, dict[str, dict]], metric: str) -> dict[str, float]:
    """``{case: mean over seeds}`` of one metric."""
    return mean_over_seeds([{case: row[metric] for case, row in rows.items()} for _, rows in sorted(seeds.items())])


def network_row(seeds: dict[int, dict[str, dict]], with_tumour: list[str], tumour_free: list[str]) -> dict:
    """One table row: ``{metric: {"mean", "std", "n"}}`` over the tumour-bearing cases (seed means per case)
    and ``fp_per_tumour_free_case`` ({"mean", "std", "n"} over the tumour-free cases), ``seeds``: how many."""
    row = {}
    for metric in CASE_METRICS:
        values = seed_means(seeds, metric)
        mean, std, n = mean_std([values[c] for c in with_tumour])
        row[metric] = {"mean": mean, "std": std, "n": n}
    fp = seed_means(seeds, "fp")
    mean, std, n = mean_std([fp[c] for c in tumour_free])
    row["fp_per_tumour_free_case"] = {"mean": mean, "std": std, "n": n}
    row["seeds"] = len(seeds)
    return row


def set_table(per_case: dict, cases: list[str]) -> dict:
    """``{"cases", "tumour_bearing", "tumour_free", "rows": {model: {post: network_row}}}`` for one set."""
    with_tumour, tumour_free = tumour_cases(per_case, cases)
    rows = {key: {post: network_row({s: {c: r[c] for c in cases} for s, r in seeds.items()}, with_tumour, tumour_free)
                  for post, seeds in posts.items()}
            for key, posts in per_case.items()}
    return {"cases": len(cases), "tumour_bearing": len(with_tumour), "tumour_free": len(tumour_free), "rows": rows}


def per_seed_rows(per_case: dict, cases: list[str], keys: tuple[str, ...]) -> dict:
    """``{model: {seed: {"dsc": mean over tumour-bearing cases, "f1": ..., "fp_per_tumour_free_case": ...}}}``
    without post-processing, for the networks ``keys`` (those trained per seed)."""
    with_tumour, tumour_free = tumour_cases(per_case, cases)
    out = {}
    for key in keys:
        for seed, rows in sorted(per_case.get(key, {}).get(NO_POST, {}).items()):
            out.setdefault(key, {})[seed] = {
                "dsc": mean_std([rows[c]["dsc"] for c in with_tumour])[0],
                "f1": mean_std([rows[c]["f1"] for c in with_tumour])[0],
                "fp_per_tumour_free_case": mean_std([rows[c]["fp"] for c in tumour_free])[0]}
    return out


def comparisons(per_case: dict, cases: list[str], post: str = NO_POST) -> list[dict]:
    """Each pair of :data:`COMPARISONS` present: ``{"network", "reference", "post", **PairedDifference}``
    of the per-case DSC (seed means) on the tumour-bearing ``cases``, in DSC points (x 100)."""
    with_tumour, _ = tumour_cases(per_case, cases)
    out = []
    for key, reference in COMPARISONS:
        if post not in per_case.get(key, {}) or post not in per_case.get(reference, {}) or not with_tumour:
            continue
        a, b = (seed_means(per_case[k][post], "dsc") for k in (key, reference))
        a, b = {c: 100 * v for c, v in a.items()}, {c: 100 * v for c, v in b.items()}
        diff = compare_networks(a, b, with_tumour)
        out.append({"network": key, "reference": reference, "post": post, **diff.as_dict(),
                    "network_dsc": sum(a[c] for c in with_tumour) / len(with_tumour),
                    "reference_dsc": sum(b[c] for c in with_tumour) / len(with_tumour)})
    return out


def finds_no_tumour(row: dict) -> bool:
    """A network that finds no lesion of any tumour-bearing case (DSC-TP has no case)."""
    return row.get("dsc_tp", {}).get("n", 0) == 0


def is_nan(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))
