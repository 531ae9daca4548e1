"""fer_utils.uncertainty: does a 95 % interval cover the truth 95 % of the time on data made like ours?

A few cells of the simulated grid of docs/statistics.md (``fer_utils.coverage``; the whole grid is
``python -m fer_utils simulate-coverage``), then the method's guards on small hand-made counts.
"""
from __future__ import annotations

import dataclasses
import functools
import math

import numpy as np
import pytest
from scipy import optimize

from fer_utils import coverage
from fer_utils.coverage import Scenario, truth
from fer_utils.results import reading
from fer_utils.uncertainty import Estimate, _p_value, accuracy, difference, holm, subject_counts

EXPERIMENTS = 300  # per cell; binomial s.e. of a 95 % coverage or a 5 % rejection rate: 1.26 points


def _cell(name: str, target: float, subjects: int, seeds: int, faces: tuple[int, int]) -> Scenario:
    sds = coverage.VARIANCES[name]
    return Scenario(subjects, seeds, *sds, delta=0.3, mu=coverage.mu_for(target, *sds[:3]), faces=faces)


SEEDS_5 = _cell("seeds dominate", 0.9, 30, 5, (10, 40))
SEEDS_2 = _cell("seeds dominate", 0.5, 30, 2, (10, 40))
SUBJECTS_3 = _cell("subjects dominate", 0.5, 10, 3, (2, 8))
NEAR_ONE = _cell("subjects dominate", 0.98, 30, 3, (10, 40))
ONE_SEED = Scenario(subjects=25, seeds=1, sd_subject=1.0, sd_seed=0.0, sd_inter=0.2)


@functools.cache
def cell(sc: Scenario) -> tuple[float, float, float]:
    return coverage.cell(sc, EXPERIMENTS)


def at_least(rate: float, nominal: float, n: int = EXPERIMENTS, k: float = 3.0) -> bool:
    return rate >= nominal - k * math.sqrt(nominal * (1 - nominal) / n)


# The full grid, with where it falls short, is in docs/statistics.md.
@pytest.mark.parametrize("sc", [SEEDS_5, SUBJECTS_3, NEAR_ONE], ids=["seeds-dominate", "subjects-dominate",
                                                                     "near-100-percent"])
def test_coverage_and_type_one_error(sc: Scenario) -> None:
    acc, diff, null = cell(sc)
    assert at_least(acc, 0.95) and at_least(diff, 0.95), (acc, diff)
    assert max(acc, diff) <= 0.995, (acc, diff)  # not bought with useless width
    assert null <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / EXPERIMENTS), null


def test_an_accuracy_from_two_seeds_that_dominate_falls_short_as_documented() -> None:
    """The known weakness (docs/statistics.md): from 2 seeds the plug-in Satterthwaite df is optimistic where the
    seeds carry most of the variance, and an arm's accuracy is covered about 88-89 % of the time (a difference, with
    two arms' seeds, keeps 95 %). This pins it, so that a change for the worse shows."""
    acc, diff, null = cell(SEEDS_2)
    assert 0.84 <= acc < 0.95 and at_least(diff, 0.95) and null <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / EXPERIMENTS)


def test_one_seed_covers_without_seed_spread_and_says_so() -> None:
    acc_true, _ = truth(ONE_SEED)
    accs, _ = coverage.estimates(ONE_SEED, EXPERIMENTS, 1)
    assert at_least(coverage.coverage(accs, acc_true), 0.95), coverage.coverage(accs, acc_true)
    assert not any(e.seed_spread_measured for e in accs)
    assert all(e.seed_var is None and e.df == ONE_SEED.subjects - 1 for e in accs)


def naive_face_interval(correct: np.ndarray, faces: np.ndarray, rng: np.random.Generator,
                        n_boot: int = 1000) -> tuple[np.ndarray, np.ndarray]:
    """The old way: percentile bootstrap over faces as if independent (one run: Binomial(N, acc) / N)."""
    n = int(faces.sum())
    acc = correct.sum(-1) / n
    draws = rng.binomial(n, acc[:, None], size=(acc.size, n_boot)) / n
    return np.percentile(draws, 2.5, axis=1), np.percentile(draws, 97.5, axis=1)


def test_naive_face_bootstrap_under_covers_clustered_faces() -> None:
    acc_true, _ = truth(ONE_SEED)
    c_a, _, faces = coverage.simulate(ONE_SEED, EXPERIMENTS, seed=1)
    low, high = naive_face_interval(c_a[:, 0], faces, np.random.default_rng(0))
    naive = float(np.mean((low <= acc_true) & (acc_true <= high)))
    assert naive < 0.95 - 3 * math.sqrt(0.95 * 0.05 / EXPERIMENTS), naive
    accs, _ = coverage.estimates(ONE_SEED, EXPERIMENTS, 1)
    assert naive < coverage.coverage(accs, acc_true) - 0.05


def test_power_at_the_predicted_mdd() -> None:
    """A true difference of the predicted smallest detectable size is found about 80 % of the time (measured: 70 %
    with 3 seeds per arm: each experiment's df varies about the one mdd() plans with, so it is a little optimistic).
    """
    null = dataclasses.replace(SUBJECTS_3, delta=0.0, subjects=30, faces=(6, 12))
    _, pilots = coverage.estimates(null, EXPERIMENTS, 1)
    # the components averaged over pilots are unbiased for the true ones: mdd() from them is the design's mdd
    # (low = high: no interval width to add near the bounds, at 50 % there is none)
    pilot = dataclasses.replace(pilots[0], seed_var=float(np.mean([e.seed_var for e in pilots])),
                                subject_var=float(np.mean([e.subject_var for e in pilots])), low=0.0, high=0.0)
    mdd = pilot.mdd()
    delta = optimize.brentq(lambda d: truth(dataclasses.replace(null, delta=d))[1] + mdd, 0.0, 3.0)
    _, diffs = coverage.estimates(dataclasses.replace(null, delta=delta), EXPERIMENTS, 2)
    assert 0.65 <= coverage.rejection(diffs) <= 0.88, (mdd, coverage.rejection(diffs))


def toy_runs(hits: list[list[int]], totals: tuple[int, ...] = (6, 8, 10)) -> list[dict[str, list[int]]]:
    return [{f"s{k}": [h, t] for k, (h, t) in enumerate(zip(row, totals))} for row in hits]


A3 = toy_runs([[4, 5, 7], [5, 6, 6], [3, 7, 8]])
B3 = toy_runs([[3, 5, 6], [4, 4, 7], [3, 6, 6]])


def test_estimate_is_the_seed_mean_of_run_accuracies_and_deterministic() -> None:
    est = accuracy(A3)
    assert est.value == pytest.approx(np.mean([16 / 24, 17 / 24, 18 / 24]))
    assert est == accuracy(A3)
    assert est.low < est.value < est.high and est.seeds == 3 and est.subjects == 3
    diff = difference(A3, B3)
    assert diff.value == pytest.approx(np.mean([16 / 24, 17 / 24, 18 / 24]) - np.mean([14 / 24, 15 / 24, 15 / 24]))
    assert diff == difference(A3, B3) and diff.p_value < 1
    # JSON gives lists, callers may give tuples: the same answer
    assert accuracy([{k: tuple(v) for k, v in run.items()} for run in A3]) == est


def test_p_value_agrees_with_the_interval() -> None:
    diff = difference(A3, B3)
    low95, _ = (diff.low, diff.high)
    assert (diff.p_value < 0.05) == (low95 > 0)
    at_p = difference(A3, B3, level=1 - diff.p_value)
    assert at_p.low == pytest.approx(0.0, abs=1e-7)


def test_seed_numbers_do_not_matter_and_arms_may_differ_in_seeds() -> None:
    """Seed s of a is not seed s of b: renumbering one arm's seeds changes no number (it moved p 0.10 -> 0.54)."""
    for order in ([1, 2, 0], [2, 0, 1], [2, 1, 0]):
        assert difference(A3, [B3[i] for i in order]) == difference(A3, B3)
    uneven = difference(A3, B3[:2])
    assert (uneven.seeds, uneven.seeds_b, uneven.seeds_text()) == (3, 2, "3 vs 2") and uneven.seed_spread_measured
    assert not difference(A3, B3[:1]).seed_spread_measured  # one seed in an arm: subjects only


def test_seed_spread_unmeasured_with_one_seed() -> None:
    est = accuracy(A3[:1])
    assert not est.seed_spread_measured and est.seed_var is None and est.df == 2
    assert est.mdd() == est.mdd(seeds=10) > 0  # the subjects-only floor: more seeds cannot be priced in
    assert accuracy(A3).seed_spread_measured
    assert difference(A3, B3).mdd(seeds=12) < difference(A3, B3).mdd()
    with pytest.raises(ValueError, match="at least 2 seeds"):
        accuracy(A3).mdd(seeds=1)


@pytest.mark.parametrize("hits", [[[6, 8, 10], [6, 8, 10]], [[0, 0, 0], [0, 0, 0]]], ids=["100 %", "0 %"])
def test_an_accuracy_at_the_bound_keeps_a_real_interval(hits: list[list[int]]) -> None:
    """At 0 or 100 % nothing varies, yet the interval is not a point: n_eff falls back to the subjects."""
    est = accuracy(toy_runs(hits))
    assert 0.0 <= est.low < est.high <= 1.0 and est.high - est.low > 0.1 and est.mdd() > 0
    assert est.value in (est.low, est.high)
    near = accuracy(toy_runs([[6, 8, 10], [6, 8, 9]]))
    assert near.low < near.value < near.high <= 1.0  # Wilson: inside [0, 1] without clipping a symmetric interval


def test_a_difference_against_a_perfect_arm_is_no_zero_width_certainty() -> None:
    perfect = toy_runs([[6, 8, 10], [6, 8, 10]])
    est = difference(perfect, toy_runs([[6, 8, 9], [6, 7, 10]]))
    assert -1 <= est.low < est.value < est.high <= 1 and 0 < est.p_value < 1
    same = difference(perfect, perfect)
    assert same.se == 0 and same.p_value == 1.0 and same.high - same.low > 0  # nothing varies: no test, no 0 width
    assert same.mdd() > 0  # from the interval's width: never 0 at the bound
    point = dataclasses.replace(same, low=0.0, high=0.0)
    with pytest.raises(ValueError, match="nothing varied"):
        point.mdd()  # never a detectable difference of 0


def test_a_subject_without_faces_is_no_cluster() -> None:
    empty = [dict(run, s9=[0, 0]) for run in A3]
    assert accuracy(empty) == accuracy(A3) and accuracy(empty).subjects == 3
    assert difference(empty, [dict(run, s9=[0, 0]) for run in B3]) == difference(A3, B3)


def test_nan_in_is_named_or_undefined_out_never_p_zero() -> None:
    with pytest.raises(ValueError, match=r"run 0, subject 's1'.*not a pair of finite counts"):
        accuracy([{"s0": [1, 2], "s1": [math.nan, 2]}, {"s0": [1, 2], "s1": [1, 2]}])
    assert math.isnan(_p_value(0.1, lambda level: (math.nan, math.nan)))
    undefined = dataclasses.replace(difference(A3, B3), se=math.nan, low=math.nan, high=math.nan, p_value=math.nan)
    assert not undefined.defined and reading(undefined, math.nan, 3).startswith("undefined")


def test_holm() -> None:
    assert holm([0.01, 0.04, 0.03, math.nan]) == pytest.approx([0.03, 0.06, 0.06, math.nan], nan_ok=True)
    assert holm([0.5, 0.001]) == pytest.approx([0.5, 0.002]) and holm([]) == []


@pytest.mark.parametrize(("a", "b", "message"), [
    ([], None, "no runs"),
    ([{}], None, "run 0 has no subjects"),
    (toy_runs([[0, 0]], (0, 0)), None, "run 0 has no faces"),
    (toy_runs([[7, 1, 1]]), None, "'s0'.*0 <= correct <= total"),
    (toy_runs([[-1, 1, 1]]), None, "'s0'.*0 <= correct <= total"),
    ([{"s0": [1, 2], "s1": [1, 2, 3]}], None, "'s1'.*not a \\(correct, total\\) pair"),
    (A3[:1] + [{"s0": [1, 6], "s1": [1, 8], "x": [1, 10]}], None, "subject 's2' is in run 0 but not in run 1"),
    (A3[:1] + toy_runs([[1, 1, 1]], (6, 9, 10)), None, "subject 's1' has 8 faces in run 0 but 9 in run 1"),
    (A3, [dict(run, s9=[1, 1]) for run in B3], "subject 's9' is in b but not in a"),
    (A3, toy_runs([[1, 1, 1]], (6, 8, 11)), "a has 24 faces, b 25 \\(subject 's2': 10 against 11\\)"),
    ([{"s0": [1, 6]}], None, "at least 2 subjects"),
    ([{"s0": [1, 6], "s1": [0, 0]}], None, "1 subject with faces"),
])
def test_input_validation(a: list, b: list | None, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        accuracy(a) if b is None else difference(a, b)


def test_subject_counts() -> None:
    correct = np.array([True, False, True, True, False])
    subjects = np.array(["ann", "bob", "ann", "bob", "ann"])
    assert subject_counts(correct, subjects) == {"ann": [2, 3], "bob": [1, 2]}
    assert subject_counts(np.array([1, 0]), np.array([3, 3])) == {"3": [1, 2]}
    with pytest.raises(ValueError, match="one id per face"):
        subject_counts(correct, subjects[:4])
    with pytest.raises(ValueError, match="0/1"):
        subject_counts(np.array([2, 0]), np.array(["a", "b"]))


def test_text() -> None:
    acc = Estimate(0.6123, 0.58, 0.644, 0.016, 10.0, 0.0, 3, 25, 1e-4, 1e-4)
    assert acc.text() == "61.2 % [58.0, 64.4]"
    diff = dataclasses.replace(acc, value=0.031, low=-0.005, high=0.067)
    assert diff.text(points=True) == "+3.1 pts [-0.5, +6.7]"
