"""Statistics of a comparison between two networks on one test set: seeds, cases, bootstrap CIs.

Plain numpy functions on per-case numbers (the ``evaluation_per_case.csv`` rows of
``nnunet_ts evaluate``); no file IO.

How two networks A and B (e.g. a student and the baseline) are compared:

1. **Seeds averaged per case first.** Each network is trained with several training seeds; its
   per-case metric is the mean over its seeds (:func:`mean_over_seeds`). Seeds of A and B are
   independent trainings (seed k of A has nothing to pair with seed k of B), so they are not paired.
2. **Paired difference per case**: ``d_i = A_i - B_i`` on the same test case i.
3. **Paired bootstrap over cases** (:func:`paired_bootstrap`): resample the n cases with replacement
   ``n_boot`` times, take the mean of ``d`` over each resample; the CI is the percentile interval
   (2.5 % and 97.5 % quantiles for 95 %) of those means. The RNG seed is fixed, so a report is
   reproducible to the digit.

What the interval covers: which test cases happened to be drawn, given these trainings. The spread
between training seeds enters only through the per-case means (more seeds: less seed noise in each
``A_i``); it is not a separate variance component. With one seed per network the interval says
nothing about training luck, which on small data is large (docs/experiments.md, "Onset variance").
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np

BOOTSTRAP_SEED = 0
N_BOOT = 10_000


@dataclass(frozen=True)
class PairedDifference:
    """Mean of ``a - b`` over cases with its percentile bootstrap CI (same units as the inputs).

    Attributes:
        mean: mean paired difference over the cases.
        low, high: the CI's bounds.
        confidence: e.g. 0.95.
        n_cases: cases compared.
        n_boot: bootstrap resamples.
        seed: the bootstrap's RNG seed.
    """

    mean: float
    low: float
    high: float
    confidence: float
    n_cases: int
    n_boot: int
    seed: int

    def as_dict(self) -> dict:
        return asdict(self)


def paired_bootstrap(a: Sequence[float], b: Sequence[float], n_boot: int = N_BOOT, confidence: float = 0.95,
                     seed: int = BOOTSTRAP_SEED) -> PairedDifference:
    """Percentile bootstrap CI of ``mean(a - b)``, resampling cases (pairs) with replacement.

    Args:
        a, b: one number per case, the same cases in the same order (n,); no NaN.
        n_boot: resamples (>= 1).
        confidence: in (0, 1).
        seed: RNG seed (``numpy.random.default_rng``).

    Raises:
        ValueError: lengths differ, no case, a NaN, or an option out of range.
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.ndim != 1 or a.shape != b.shape:
        raise ValueError(f"a and b must be 1D with one value per case, got shapes {a.shape} and {b.shape}")
    if a.size == 0:
        raise ValueError("no case to compare")
    if np.isnan(a).any() or np.isnan(b).any():
        raise ValueError("a NaN among the per-case values; leave out the cases where a metric is undefined")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    d = a - b
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, d.size, size=(n_boot, d.size))].mean(axis=1)
    tail = (1.0 - confidence) / 2
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return PairedDifference(float(d.mean()), float(low), float(high), confidence, int(d.size), n_boot, seed)


def mean_over_seeds(per_seed: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """``{case: mean over seeds}`` of per-seed ``{case: value}`` maps.

    A NaN in a seed (an undefined metric for that case) is left out of that case's mean; a case NaN in
    every seed stays NaN.

    Raises:
        ValueError: no seed, or the seeds do not cover the same cases.
    """
    if not per_seed:
        raise ValueError("no seed")
    cases = sorted(per_seed[0])
    for i, seed in enumerate(per_seed[1:], 1):
        if sorted(seed) != cases:
            differ = sorted(set(seed) ^ set(cases))
            raise ValueError(f"seed run {i} covers other cases than seed run 0 (e.g. {differ[:3]})")
    out = {}
    for case in cases:
        values = np.asarray([float(seed[case]) for seed in per_seed])
        values = values[~np.isnan(values)]
        out[case] = float(values.mean()) if values.size else math.nan
    return out


def compare_networks(a: Mapping[str, float], b: Mapping[str, float], cases: Sequence[str] | None = None,
                     **bootstrap) -> PairedDifference:
    """:func:`paired_bootstrap` of two ``{case: value}`` maps on ``cases`` (default: all of ``a``).

    Raises:
        ValueError: a case missing from either map (or one of the errors of :func:`paired_bootstrap`).
    """
    cases = sorted(a) if cases is None else list(cases)
    missing = [c for c in cases if c not in a or c not in b]
    if missing:
        raise ValueError(f"case(s) {missing[:3]} lack a value for one of the two networks")
    return paired_bootstrap([a[c] for c in cases], [b[c] for c in cases], **bootstrap)


def mean_std(values: Sequence[float]) -> tuple[float | None, float | None, int]:
    """(mean, population std, n) of the non-NaN values; (None, None, 0) when there is none."""
    v = np.asarray(values, dtype=float)
    v = v[~np.isnan(v)]
    if v.size == 0:
        return None, None, 0
    return float(v.mean()), float(v.std(ddof=0)), int(v.size)
