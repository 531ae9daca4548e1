"""fer_utils.uncertainty: does a 95 % interval cover the truth 95 % of the time on data made like ours?

Data are simulated as they are made: J test subjects with 6-12 faces each, S training seeds, and
logit P(face read right) = mu + u_j (subject) + v_s (seed) + w_sj (seed x subject); arm B = arm A + delta on
the logit scale, sharing the subjects, with seed effects correlated 0.5 across arms at the same seed. The truth is
the population quantity: the expectation over new subjects and new seeds (exact, by Gauss-Hermite quadrature,
since u + v + w is normal and the face counts are drawn independently of the effects).
"""
from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass

import numpy as np
import pytest
from scipy import optimize, special

from fer_utils.uncertainty import Estimate, accuracy, difference, subject_counts

EXPERIMENTS = 1000  # per scenario; binomial s.e. of a 95 % coverage or a 5 % rejection rate: 0.69 points
N_BOOT = 500


@dataclass(frozen=True)
class Scenario:
    subjects: int
    seeds: int
    sd_subject: float
    sd_seed: float
    sd_inter: float
    delta: float = 0.0  # arm B's logit shift
    mu: float = 0.6  # logit of about 65 % accuracy
    rho: float = 0.5  # correlation of the two arms' seed effects at one seed


SEED_DOMINATED = Scenario(subjects=120, seeds=5, sd_subject=0.4, sd_seed=0.3, sd_inter=0.15, delta=0.2)
SEED_DOMINATED_3 = dataclasses.replace(SEED_DOMINATED, seeds=3)
SUBJECT_DOMINATED = Scenario(subjects=25, seeds=3, sd_subject=1.0, sd_seed=0.05, sd_inter=0.2, delta=0.2)
ONE_SEED = Scenario(subjects=25, seeds=1, sd_subject=1.0, sd_seed=0.0, sd_inter=0.2, delta=0.2)


def truth(sc: Scenario) -> tuple[float, float]:
    """Population accuracy of arm A and difference A - B (expectation over new subjects and seeds)."""
    x, w = np.polynomial.hermite_e.hermegauss(80)
    sd = math.sqrt(sc.sd_subject ** 2 + sc.sd_seed ** 2 + sc.sd_inter ** 2)
    acc_a = float(w @ special.expit(sc.mu + sd * x) / w.sum())
    acc_b = float(w @ special.expit(sc.mu + sc.delta + sd * x) / w.sum())
    return acc_a, acc_a - acc_b


def simulate(sc: Scenario, experiments: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Correct counts of arms A and B (experiments x seeds x subjects) and the faces per subject."""
    rng = np.random.default_rng(seed)
    e, s, j = experiments, sc.seeds, sc.subjects
    faces = rng.integers(6, 13, size=j)
    u = rng.normal(0, sc.sd_subject, (e, 1, j))
    v_a = rng.normal(0, 1, (e, s, 1))
    v_b = sc.rho * v_a + math.sqrt(1 - sc.rho ** 2) * rng.normal(0, 1, (e, s, 1))
    logit_a = sc.mu + u + sc.sd_seed * v_a + rng.normal(0, sc.sd_inter, (e, s, j))
    logit_b = sc.mu + sc.delta + u + sc.sd_seed * v_b + rng.normal(0, sc.sd_inter, (e, s, j))
    return rng.binomial(faces, special.expit(logit_a)), rng.binomial(faces, special.expit(logit_b)), faces


def as_runs(correct: np.ndarray, faces: np.ndarray) -> list[dict[str, tuple[int, int]]]:
    """One experiment's seeds x subjects counts as the JSON-like mappings the API takes."""
    ids = [f"p{k:03d}" for k in range(faces.size)]
    return [dict(zip(ids, zip(row, faces.tolist()))) for row in correct.tolist()]


@functools.cache
def run_scenario(sc: Scenario, experiments: int = EXPERIMENTS, seed: int = 1) -> tuple[list[Estimate], ...]:
    """accuracy(A) and difference(A, B) of every simulated experiment (cached: several tests read them)."""
    c_a, c_b, faces = simulate(sc, experiments, seed)
    accs, diffs = [], []
    for k in range(experiments):
        a, b = as_runs(c_a[k], faces), as_runs(c_b[k], faces)
        accs.append(accuracy(a, n_boot=N_BOOT, seed=k))
        diffs.append(difference(a, b, n_boot=N_BOOT, seed=k))
    return accs, diffs


def coverage(estimates: list[Estimate], target: float) -> float:
    return float(np.mean([e.low <= target <= e.high for e in estimates]))


def rejection(estimates: list[Estimate]) -> float:
    return float(np.mean([e.p_value < 0.05 for e in estimates]))


def within(rate: float, nominal: float, n: int, k: float = 3.0) -> bool:
    return abs(rate - nominal) <= k * math.sqrt(nominal * (1 - nominal) / n)


# Measured (1000 experiments each; +-3 s.e. = +-2.1 points):
#   seed-dominated (J=120, S=5):     accuracy 95.1 %, difference 95.0 %
#   seed-dominated (J=120, S=3):     accuracy 95.0 %, difference 95.2 %
#   subject-dominated (J=25, S=3):   accuracy 95.6 %, difference 96.5 % (97.2 / 98.6 % without the interaction
#                                    correction, 92.4 % for the S=3 seed-dominated accuracy with the plain df)
#   one seed, no seed spread (J=25): accuracy 95.0 %
@pytest.mark.parametrize("sc", [SEED_DOMINATED, SEED_DOMINATED_3, SUBJECT_DOMINATED],
                         ids=["seed-dominated-5", "seed-dominated-3", "subject-dominated"])
def test_coverage(sc: Scenario) -> None:
    acc_true, diff_true = truth(sc)
    accs, diffs = run_scenario(sc)
    assert within(coverage(accs, acc_true), 0.95, EXPERIMENTS), coverage(accs, acc_true)
    assert within(coverage(diffs, diff_true), 0.95, EXPERIMENTS), coverage(diffs, diff_true)
    assert all(e.seed_spread_measured for e in accs + diffs)


def test_one_seed_covers_without_seed_spread_and_says_so() -> None:
    acc_true, _ = truth(ONE_SEED)
    accs, _ = run_scenario(ONE_SEED)
    assert within(coverage(accs, acc_true), 0.95, EXPERIMENTS), coverage(accs, acc_true)
    assert not any(e.seed_spread_measured for e in accs)
    assert all(e.seed_var is None and e.df == ONE_SEED.subjects - 1 for e in accs)


def naive_face_interval(correct: np.ndarray, faces: np.ndarray, rng: np.random.Generator,
                        n_boot: int = 1000) -> tuple[np.ndarray, np.ndarray]:
    """The old way: percentile bootstrap over faces as if independent (one run: Binomial(N, acc) / N)."""
    n = int(faces.sum())
    acc = correct.sum(-1) / n
    draws = rng.binomial(n, acc[:, None], size=(acc.size, n_boot)) / n
    return np.percentile(draws, 2.5, axis=1), np.percentile(draws, 97.5, axis=1)


# Measured: the face bootstrap covers 80.0 % (1000 experiments) where the subject bootstrap covers 95.0 %.
def test_naive_face_bootstrap_under_covers_clustered_faces() -> None:
    acc_true, _ = truth(ONE_SEED)
    c_a, _, faces = simulate(ONE_SEED, EXPERIMENTS, seed=1)
    low, high = naive_face_interval(c_a[:, 0], faces, np.random.default_rng(0))
    naive = float(np.mean((low <= acc_true) & (acc_true <= high)))
    assert naive < 0.95 - 3 * math.sqrt(0.95 * 0.05 / EXPERIMENTS), naive
    assert naive < coverage(run_scenario(ONE_SEED)[0], acc_true) - 0.05


# Measured rejection rates at delta = 0: seed-dominated 4.2 %, subject-dominated 4.0 % (0.9 % without the
# interaction correction: the test would fail).
@pytest.mark.parametrize("sc", [SEED_DOMINATED_3, SUBJECT_DOMINATED], ids=["seed-dominated-3", "subject-dominated"])
def test_null_rejects_at_five_percent(sc: Scenario) -> None:
    _, diffs = run_scenario(dataclasses.replace(sc, delta=0.0))
    assert within(rejection(diffs), 0.05, EXPERIMENTS), rejection(diffs)


# Measured: rejection 78.8 % at the predicted mdd of 13.5 points (nominal power 80 %). Where the alternative moves
# the arms towards 100 %, their spread shrinks and power comes out higher (84 % seed-dominated, 5 seeds).
def test_power_at_the_predicted_mdd() -> None:
    null = dataclasses.replace(SUBJECT_DOMINATED, delta=0.0)
    _, pilots = run_scenario(null)
    # the components averaged over pilots are unbiased for the true ones: mdd() from them is the design's mdd
    pilot = dataclasses.replace(pilots[0], seed_var=float(np.mean([e.seed_var for e in pilots])),
                                subject_var=float(np.mean([e.subject_var for e in pilots])))
    mdd = pilot.mdd()
    delta = optimize.brentq(lambda d: truth(dataclasses.replace(null, delta=d))[1] + mdd, 0.0, 3.0)
    _, diffs = run_scenario(dataclasses.replace(null, delta=delta), EXPERIMENTS, 2)
    assert abs(rejection(diffs) - 0.8) <= 0.07, (mdd, rejection(diffs))


def toy_runs(hits: list[list[int]], totals: tuple[int, ...] = (6, 8, 10)) -> list[dict[str, list[int]]]:
    return [{f"s{k}": [h, t] for k, (h, t) in enumerate(zip(row, totals))} for row in hits]


A3 = toy_runs([[4, 5, 7], [5, 6, 6], [3, 7, 8]])
B3 = toy_runs([[3, 5, 6], [4, 4, 7], [3, 6, 6]])


def test_estimate_is_the_seed_mean_of_run_accuracies_and_deterministic() -> None:
    est = accuracy(A3)
    assert est.value == pytest.approx(np.mean([16 / 24, 17 / 24, 18 / 24]))
    assert est == accuracy(A3) and accuracy(A3[:1]) != accuracy(A3[:1], seed=1)
    assert est.low < est.value < est.high and est.seeds == 3 and est.subjects == 3
    diff = difference(A3, B3)
    assert diff.value == pytest.approx(np.mean([2 / 24, 2 / 24, 3 / 24]))
    assert diff == difference(A3, B3) and diff.p_value < 1
    # JSON gives lists, callers may give tuples: the same answer
    assert accuracy([{k: tuple(v) for k, v in run.items()} for run in A3]) == est


def test_seed_spread_unmeasured_with_one_seed() -> None:
    est = accuracy(A3[:1])
    assert not est.seed_spread_measured and est.seed_var is None and est.df == 2
    assert est.mdd() == est.mdd(seeds=10) > 0  # the subjects-only floor: more seeds cannot be priced in
    assert accuracy(A3).seed_spread_measured
    assert accuracy(A3).mdd(seeds=12) < accuracy(A3).mdd()
    with pytest.raises(ValueError, match="at least 2 seeds"):
        accuracy(A3).mdd(seeds=1)


def test_clipped_to_the_unit_interval() -> None:
    est = accuracy(toy_runs([[6, 8, 10], [6, 8, 9]]))
    assert est.high == 1.0 and est.low < 1
    perfect = accuracy(toy_runs([[6, 8, 10], [6, 8, 10]]))
    assert (perfect.low, perfect.value, perfect.high, perfect.se, perfect.p_value) == (1, 1, 1, 0, 0)


@pytest.mark.parametrize(("a", "b", "message"), [
    ([], None, "no runs"),
    ([{}], None, "run 0 has no subjects"),
    (toy_runs([[0, 0]], (0, 0)), None, "run 0 has no faces"),
    (toy_runs([[7, 1, 1]]), None, "'s0'.*0 <= correct <= total"),
    (toy_runs([[-1, 1, 1]]), None, "'s0'.*0 <= correct <= total"),
    ([{"s0": [1, 2], "s1": [1, 2, 3]}], None, "'s1'.*not a \\(correct, total\\) pair"),
    (A3[:1] + [{"s0": [1, 6], "s1": [1, 8], "x": [1, 10]}], None, "subject 's2' is in run 0 but not in run 1"),
    (A3, B3[:2], "3 runs in a and 2 in b"),
    (A3, [dict(run, s9=[1, 1]) for run in B3], "subject 's9' is in b but not in a"),
    ([{"s0": [1, 6]}], None, "at least 2 subjects"),
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
