"""nnunet_ts.evaluation.statistics: paired bootstrap and seed averaging, on examples worked out by hand."""
from __future__ import annotations

import math

import numpy as np
import pytest

from nnunet_ts.evaluation.statistics import compare_networks, mean_over_seeds, mean_std, paired_bootstrap


def test_constant_differences_give_a_zero_width_interval_at_that_value():
    result = paired_bootstrap([0.9, 0.5, 0.7, 0.2], [0.8, 0.4, 0.6, 0.1])
    assert result.mean == pytest.approx(0.1)
    assert result.low == pytest.approx(0.1) and result.high == pytest.approx(0.1)
    assert (result.n_cases, result.n_boot, result.seed, result.confidence) == (4, 10_000, 0, 0.95)


def test_two_cases_hand_computed_quantiles():
    # d = (0, 1): a resample's mean is 0, 0.5 or 1 with probabilities 1/4, 1/2, 1/4.
    # 95 %: the 2.5 % and 97.5 % quantiles fall in the 0 and the 1 blocks.
    wide = paired_bootstrap([0.0, 1.0], [0.0, 0.0])
    assert (wide.mean, wide.low, wide.high) == (0.5, 0.0, 1.0)
    # 40 %: the 30 % and 70 % quantiles both fall in the middle block (25 %..75 %).
    narrow = paired_bootstrap([0.0, 1.0], [0.0, 0.0], confidence=0.4)
    assert (narrow.low, narrow.high) == (0.5, 0.5)


def test_the_bootstrap_distribution_has_the_expected_shares():
    # with 3 cases d = (0, 0, 3): the resample mean is 0 with probability (2/3)^3 = 8/27 = 29.6 %,
    # so the 25 % quantile is 0 and the 35 % quantile is not
    a, b = [0.0, 0.0, 3.0], [0.0, 0.0, 0.0]
    assert paired_bootstrap(a, b, confidence=0.5).low == 0.0
    assert paired_bootstrap(a, b, confidence=0.3).low > 0.0


def test_direction_and_reproducibility():
    rng = np.random.default_rng(5)
    a, b = rng.uniform(size=30), rng.uniform(size=30)
    first, again = paired_bootstrap(a, b), paired_bootstrap(a, b)
    assert first == again  # fixed RNG seed: the report is reproducible to the digit
    other = paired_bootstrap(a, b, seed=1)
    assert other.mean == first.mean and (other.low, other.high) != (first.low, first.high)
    flipped = paired_bootstrap(b, a)
    assert flipped.mean == pytest.approx(-first.mean)
    assert first.low < first.mean < first.high


@pytest.mark.parametrize("a, b, kwargs, match", [
    ([1.0, 2.0], [1.0], {}, "one value per case"),
    ([], [], {}, "no case"),
    ([1.0, math.nan], [1.0, 1.0], {}, "NaN"),
    ([1.0], [1.0], dict(confidence=1.0), "confidence"),
    ([1.0], [1.0], dict(n_boot=0), "n_boot"),
])
def test_bad_input(a, b, kwargs, match):
    with pytest.raises(ValueError, match=match):
        paired_bootstrap(a, b, **kwargs)


def test_seeds_are_averaged_per_case_leaving_nan_out():
    seeds = [{"c1": 0.2, "c2": 1.0, "c3": math.nan}, {"c1": 0.6, "c2": math.nan, "c3": math.nan}]
    means = mean_over_seeds(seeds)
    assert means["c1"] == pytest.approx(0.4) and means["c2"] == 1.0 and math.isnan(means["c3"])
    with pytest.raises(ValueError, match="other cases"):
        mean_over_seeds([{"c1": 1.0}, {"c2": 1.0}])
    with pytest.raises(ValueError, match="no seed"):
        mean_over_seeds([])


def test_compare_networks_on_chosen_cases():
    student = {"t1": 0.8, "t2": 0.6, "free": 1.0}
    baseline = {"t1": 0.5, "t2": 0.5, "free": 0.0}
    result = compare_networks(student, baseline, cases=["t1", "t2"])
    assert result.mean == pytest.approx(0.2) and result.n_cases == 2
    assert (result.low, result.high) == (pytest.approx(0.1), pytest.approx(0.3))
    with pytest.raises(ValueError, match="lack a value"):
        compare_networks(student, {"t1": 0.5}, cases=["t1", "t2"])


def test_mean_std():
    assert mean_std([1.0, 3.0, math.nan]) == (2.0, 1.0, 2)
    assert mean_std([math.nan]) == (None, None, 0)
