import pytest

from nnunet_ts.datasets.splits import grouped_splits


def test_patients_stay_together_and_every_case_is_validated_once():
    cases = [f"c{i}" for i in range(10)]
    patients = ["p0", "p0", "p1", "p2", "p2", "p2", "p3", "p4", "p5", "p5"]
    splits = grouped_splits(cases, patients, [1.0] * 10, num_folds=3, seed=1)
    vals = [fold["val"] for fold in splits]
    assert sorted(c for v in vals for c in v) == sorted(cases)
    patient = dict(zip(cases, patients))
    for fold in splits:
        assert set(fold["train"]) | set(fold["val"]) == set(cases)
        assert not {patient[c] for c in fold["train"]} & {patient[c] for c in fold["val"]}


def test_large_tumours_are_spread_over_folds():
    # four patients with big tumours and four with small ones, two folds: each fold gets two big
    volumes = [1000, 900, 800, 700, 1, 2, 3, 4]
    cases = [f"c{i}" for i in range(8)]
    splits = grouped_splits(cases, cases, volumes, num_folds=2, seed=0)
    big = {"c0", "c1", "c2", "c3"}
    assert [len(big & set(f["val"])) for f in splits] == [2, 2]
    assert [len(f["val"]) for f in splits] == [4, 4]


def test_same_seed_same_splits_and_seed_breaks_ties():
    cases = [f"c{i}" for i in range(12)]
    a = grouped_splits(cases, cases, [0.0] * 12, 3, seed=0)
    assert a == grouped_splits(cases, cases, [0.0] * 12, 3, seed=0)
    assert a != grouped_splits(cases, cases, [0.0] * 12, 3, seed=5)


@pytest.mark.parametrize("patients, folds, message", [
    (["p0", "p0", "p1"], 3, "2 patient"),
    (["p0", "p1", "p2"], 1, "num_folds"),
])
def test_impossible_splits_are_refused(patients, folds, message):
    with pytest.raises(ValueError, match=message):
        grouped_splits(["a", "b", "c"], patients, [1, 1, 1], folds)
