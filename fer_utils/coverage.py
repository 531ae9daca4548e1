"""Does a 95 % interval of ``fer_utils.uncertainty`` cover the truth 95 % of the time on data made like ours?

``python -m fer_utils simulate-coverage`` prints the grid of docs/statistics.md; tests/test_uncertainty.py runs a
few of its cells. Data are simulated as they are made: J test subjects with a drawn number of faces each, S
training seeds per arm, and logit P(face read right) = mu + u_j (subject) + v_s (seed) + w_sj (seed x subject)
+ x_j (subject x arm, arm b only), arm b shifted by ``delta`` on the logit scale; the arms share the subjects and
their faces, not the seeds. The truth is the population quantity: the expectation over new subjects and seeds
(exact, by Gauss-Hermite quadrature, since the effects are normal and the face counts drawn independently).
"""
from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from scipy import optimize, special

from .uncertainty import Estimate, accuracy, difference

VARIANCES = {  # (subject, seed, seed x subject, subject x arm) standard deviations on the logit scale
    "seeds dominate": (0.4, 0.3, 0.15, 0.1),
    "subjects dominate": (1.0, 0.05, 0.2, 0.2),
}
FACES = {"2-8": (2, 8), "10-40": (10, 40)}  # faces per subject, drawn uniformly per subject
ACCURACIES = (0.5, 0.9, 0.98)
SUBJECTS = (10, 30)
SEEDS = (1, 2, 3, 5)


@dataclass(frozen=True)
class Scenario:
    subjects: int
    seeds: int
    sd_subject: float
    sd_seed: float
    sd_inter: float
    sd_arm: float = 0.0  # subject x arm: arm b reads each subject a little differently
    delta: float = 0.0  # arm b's logit shift
    mu: float = 0.6  # logit of the typical face (0.6: about 65 % accuracy)
    faces: tuple[int, int] = (6, 12)


def _population(mu: float, sd: float) -> float:
    x, w = np.polynomial.hermite_e.hermegauss(80)
    return float(w @ special.expit(mu + sd * x) / w.sum())


def truth(sc: Scenario) -> tuple[float, float]:
    """Population accuracy of arm a and difference a - b (expectation over new subjects and seeds)."""
    sd = math.sqrt(sc.sd_subject ** 2 + sc.sd_seed ** 2 + sc.sd_inter ** 2)
    acc_a = _population(sc.mu, sd)
    return acc_a, acc_a - _population(sc.mu + sc.delta, math.sqrt(sd ** 2 + sc.sd_arm ** 2))


def mu_for(target: float, sd_subject: float, sd_seed: float, sd_inter: float) -> float:
    """The logit mu whose population accuracy is ``target``."""
    sd = math.sqrt(sd_subject ** 2 + sd_seed ** 2 + sd_inter ** 2)
    return float(optimize.brentq(lambda mu: _population(mu, sd) - target, -10.0, 15.0))


def simulate(sc: Scenario, experiments: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Correct counts of arms a and b (experiments x seeds x subjects) and the faces per subject."""
    rng = np.random.default_rng(seed)
    e, s, j = experiments, sc.seeds, sc.subjects
    faces = rng.integers(sc.faces[0], sc.faces[1] + 1, size=j)
    u = rng.normal(0, sc.sd_subject, (e, 1, j))
    logit_a = sc.mu + u + rng.normal(0, sc.sd_seed, (e, s, 1)) + rng.normal(0, sc.sd_inter, (e, s, j))
    logit_b = (sc.mu + sc.delta + u + rng.normal(0, sc.sd_arm, (e, 1, j)) + rng.normal(0, sc.sd_seed, (e, s, 1))
               + rng.normal(0, sc.sd_inter, (e, s, j)))
    return rng.binomial(faces, special.expit(logit_a)), rng.binomial(faces, special.expit(logit_b)), faces


def as_runs(correct: np.ndarray, faces: np.ndarray) -> list[dict[str, tuple[int, int]]]:
    """One experiment's seeds x subjects counts as the JSON-like mappings the API takes."""
    ids = [f"p{k:03d}" for k in range(faces.size)]
    return [dict(zip(ids, zip(row, faces.tolist()))) for row in correct.tolist()]


def estimates(sc: Scenario, experiments: int, seed: int = 1) -> tuple[list[Estimate], list[Estimate]]:
    """accuracy(a) and difference(a, b) of every simulated experiment."""
    c_a, c_b, faces = simulate(sc, experiments, seed)
    pairs = [(as_runs(c_a[k], faces), as_runs(c_b[k], faces)) for k in range(experiments)]
    return [accuracy(a) for a, _ in pairs], [difference(a, b) for a, b in pairs]


def coverage(found: list[Estimate], target: float) -> float:
    return float(np.mean([e.low <= target <= e.high for e in found]))


def rejection(found: list[Estimate], alpha: float = 0.05) -> float:
    return float(np.mean([e.p_value < alpha for e in found]))


def grid() -> Iterator[tuple[str, str, float, Scenario]]:
    """(variance, faces, accuracy, scenario) of every cell of docs/statistics.md's grid; arm b is 0.3 logit up."""
    for (name, sds), (faces, span), target, j, s in itertools.product(VARIANCES.items(), FACES.items(),
                                                                    ACCURACIES, SUBJECTS, SEEDS):
        yield name, faces, target, Scenario(j, s, *sds, delta=0.3, mu=mu_for(target, *sds[:3]), faces=span)


def cell(sc: Scenario, experiments: int, seed: int = 1) -> tuple[float, float, float]:
    """Coverage of the accuracy and of the difference, and the rejection rate of a true null (delta 0)."""
    acc_true, diff_true = truth(sc)
    accs, diffs = estimates(sc, experiments, seed)
    _, nulls = estimates(dataclasses.replace(sc, delta=0.0), experiments, seed + 1)
    return coverage(accs, acc_true), coverage(diffs, diff_true), rejection(nulls)


def main(experiments: int = 400) -> int:
    """Print the grid as a Markdown table (about 4 minutes on one core at 400 experiments per cell)."""
    print(f"{experiments} simulated experiments per cell; 95 % intervals; +-2 s.e. of a 95 % coverage: "
          f"{200 * math.sqrt(0.95 * 0.05 / experiments):.1f} points, of a 5 % rejection rate: "
          f"{200 * math.sqrt(0.05 * 0.95 / experiments):.1f}.\n")
    print("| variance | faces per subject | accuracy | subjects | seeds per arm | coverage: accuracy | "
          "coverage: difference | type-I error (5 %) |")
    print("|---|---|---|---|---|---|---|---|")
    for name, faces, target, sc in grid():
        acc, diff, null = cell(sc, experiments)
        print(f"| {name} | {faces} | {target:.2f} | {sc.subjects} | {sc.seeds} | {100 * acc:.1f} % | "
              f"{100 * diff:.1f} % | {100 * null:.1f} % |", flush=True)
    return 0
