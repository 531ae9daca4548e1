"""Accuracy intervals and comparisons of training configurations ("arms") that respect how the data is made.

Why not the face bootstrap
    Test faces come in clusters: the frames of one clip, the six expressions of one person. Faces of one
    subject are read right or wrong together, so resampling faces as if independent counts every subject
    several times over and gives intervals that are too narrow (in the tests: about 80 % coverage for a nominal
    95 % with 25 subjects). It also sees one trained model only, while the seed-to-seed spread of training is
    usually the larger part of the uncertainty of "configuration X reaches Y %".

Design
    Two crossed random factors: test subjects (the clusters) and training seeds; every seed's model is scored
    on the same subjects. Per run and test set the input is ``subject -> (correct, total)``; an arm is one such
    mapping per seed. A comparison pairs seed i of arm A with seed i of arm B and matches subjects by id.

Method
    1. Estimate: a run's accuracy is sum(correct) / sum(total); an arm's is the mean over seeds; a difference is
       the mean over paired seeds of acc_A - acc_B.
    2. Seed component: the sample variance (ddof=1) of the per-seed statistic over S (the exact bootstrap
       variance of a mean, with the n/(n-1) correction). Unmeasurable with one seed: ``seed_var`` is None.
    3. Subject component: a cluster bootstrap of subject ids (the same draw for both arms of a difference) on the
       seed-averaged counts, statistic sum(c) / sum(n); variance of the draws times J/(J-1).
    4. Both components contain the seed x subject interaction (and the binomial noise of the faces, which
       behaves as one); added together they count it twice. For S > 1 that share is estimated without bias from
       the two-way residuals of the linearised cell values z_sj = (c_sj - acc n_sj) / n_s (the ANOVA identity
       Var(mean) = (MS_subject + MS_seed - MS_residual) / (S J)) and taken off the subject component (floored at
       0). Without it the 95 % intervals covered 97-99 % when subjects dominate (a null comparison rejected 1 %
       instead of 5 %), and the subject component would not be what stays fixed when more seeds are run (which
       ``Estimate.mdd`` relies on). The floor keeps a little conservatism where the subjects' own share is nil
       (a difference of arms that share the subjects: about 96 % coverage).
    5. V = seed_var + subject_var, Welch-Satterthwaite df = V^2 / (seed_var^2/(S-1) + subject_var^2/(J-1))
       (J-1 with one seed); interval est +- t_df sqrt(V), two-sided t p-value for est = 0. Intervals are clipped
       to [0, 1] (accuracies) or [-1, 1] (differences). In the df formula only, seed_var is replaced by its upper
       70 % confidence bound seed_var (S-1) / chi2_{0.3, S-1}: estimated from 2-4 seeds it is often far below the
       truth, and the plug-in df then grows exactly when the interval is already too narrow (with 3 seeds the
       plain plug-in covered 92-94 % where seeds dominate; the bound brings that to 94.5-95.5 %, at most 96 %
       where subjects dominate).
    6. Minimal detectable difference: (t_{1-alpha/2} + t_power) sqrt(seed_var S/S' + subject_var) with df for S'
       seeds; with one seed only the subjects-only floor is known (``Estimate.seed_spread_measured`` is False).
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

Counts = Mapping[str, Sequence[int]]  # subject -> (correct, total) of one run on one test set

_DF_QUANTILE = 0.3  # chi-square quantile of the seed component's bound used for df only (module doc, step 5)
_BLOCK = 1 << 22  # bootstrap index entries drawn at once: bounds memory when every face is its own subject


def subject_counts(correct: np.ndarray, subjects: np.ndarray) -> dict[str, list[int]]:
    """Per-subject [correct, total] from per-face 0/1 (or bool) outcomes and per-face subject ids.

    What a run record keeps: the intervals resample subjects, so the faces' order and labels are not needed.
    """
    correct, subjects = np.asarray(correct), np.asarray(subjects)
    if correct.ndim != 1 or correct.shape != subjects.shape:
        raise ValueError(f"{correct.shape} outcomes and {subjects.shape} subject ids: need one id per face")
    if not np.isin(correct, (0, 1)).all():
        raise ValueError("outcomes must be 0/1 (correct or not)")
    ids, which = np.unique(subjects.astype(str), return_inverse=True)
    hits = np.bincount(which, weights=correct.astype(float), minlength=ids.size)
    totals = np.bincount(which, minlength=ids.size)
    return {str(s): [int(h), int(t)] for s, h, t in zip(ids, hits, totals)}


@dataclass(frozen=True)
class Estimate:
    """An accuracy or a difference of accuracies, its interval and the variance components behind it."""

    value: float
    low: float
    high: float
    se: float
    df: float
    p_value: float  # two-sided test of value == 0 (meaningful for differences)
    seeds: int
    subjects: int
    seed_var: float | None  # None with one seed: the seed spread is not measured, the interval omits it
    subject_var: float
    level: float = 0.95

    @property
    def seed_spread_measured(self) -> bool:
        """False for one seed: the interval then covers test subjects only, a lower bound on the uncertainty."""
        return self.seed_var is not None

    def mdd(self, seeds: int | None = None, alpha: float = 0.05, power: float = 0.8) -> float:
        """Minimal difference a paired comparison with ``seeds`` seeds (default: as many as here) detects.

        Two-sided level ``alpha`` with probability ``power``; the seed component scales as 1/seeds, the subject
        component stays. With the seed spread unmeasured this is the subjects-only floor (``seeds`` cannot help
        it): print it as "≥ x (1 seed: seed spread not measured)". It assumes the components stay as measured;
        near 100 % accuracy the spread shrinks and the real power is somewhat higher.
        """
        if self.seed_var is None:
            var, df = self.subject_var, float(self.subjects - 1)
        else:
            planned = self.seeds if seeds is None else seeds
            if planned < 2:
                raise ValueError(f"seeds={planned}: a comparison needs at least 2 seeds to measure the seed spread")
            seed_part = self.seed_var * self.seeds / planned
            var, df = seed_part + self.subject_var, _welch_df(seed_part, self.subject_var, planned, self.subjects)
        return float((stats.t.ppf(1 - alpha / 2, df) + stats.t.ppf(power, df)) * math.sqrt(var))

    def text(self, points: bool = False) -> str:
        """"61.2 % [58.0, 64.4]" for an accuracy; "+3.1 pts [-0.5, +6.7]" for a difference (``points``)."""
        if points:
            return f"{100 * self.value:+.1f} pts [{100 * self.low:+.1f}, {100 * self.high:+.1f}]"
        return f"{100 * self.value:.1f} % [{100 * self.low:.1f}, {100 * self.high:.1f}]"


def accuracy(runs: Sequence[Counts], level: float = 0.95, n_boot: int = 4000, seed: int = 0) -> Estimate:
    """Accuracy of an arm (one run per training seed, same test subjects) with its two-level interval."""
    ids = _subject_ids(runs, "runs")
    return _estimate([(_matrix(runs, ids, "runs"), 1.0)], (0.0, 1.0), level, n_boot, seed)


def difference(a: Sequence[Counts], b: Sequence[Counts], level: float = 0.95, n_boot: int = 4000,
               seed: int = 0) -> Estimate:
    """Accuracy of arm ``a`` minus arm ``b``: seed i of a paired with seed i of b, subjects matched by id."""
    if len(a) != len(b):
        raise ValueError(f"{len(a)} runs in a and {len(b)} in b: seeds are paired, so both need as many")
    ids = _subject_ids(a, "a")
    missing = sorted(set(ids) ^ set(_subject_ids(b, "b")), key=str)
    if missing:
        side = "a" if missing[0] in ids else "b"
        raise ValueError(f"subject {missing[0]!r} is in {side} but not in {'b' if side == 'a' else 'a'}: "
                         "a comparison needs the same test set")
    return _estimate([(_matrix(a, ids, "a"), 1.0), (_matrix(b, ids, "b"), -1.0)], (-1.0, 1.0), level, n_boot, seed)


def _subject_ids(runs: Sequence[Counts], name: str) -> list[str]:
    """The subjects every run of ``runs`` was scored on (the design is crossed: they must all agree)."""
    if len(runs) == 0:
        raise ValueError(f"{name}: no runs")
    ids = list(runs[0])
    if not ids:
        raise ValueError(f"{name}: run 0 has no subjects")
    for i, run in enumerate(runs[1:], start=1):
        odd = sorted(set(ids) ^ set(run), key=str)
        if odd:
            where = f"run 0 but not in run {i}" if odd[0] in ids else f"run {i} but not in run 0"
            raise ValueError(f"{name}: subject {odd[0]!r} is in {where}; every seed must be scored on the same "
                             "test subjects")
    return ids


def _matrix(runs: Sequence[Counts], ids: list[str], name: str) -> tuple[np.ndarray, np.ndarray]:
    """(correct, total), each seeds x subjects, checked: pairs, no negative counts, correct <= total."""
    rows = []
    for i, run in enumerate(runs):
        for sid in ids:
            pair = run[sid]
            if len(pair) != 2:
                raise ValueError(f"{name}: run {i}, subject {sid!r}: {pair!r} is not a (correct, total) pair")
            if pair[0] < 0 or pair[1] < pair[0]:
                raise ValueError(f"{name}: run {i}, subject {sid!r}: {pair!r} needs 0 <= correct <= total")
        rows.append([run[sid] for sid in ids])
        if sum(run[sid][1] for sid in ids) == 0:
            raise ValueError(f"{name}: run {i} has no faces")
    counts = np.asarray(rows, dtype=float)
    return counts[..., 0], counts[..., 1]


def _welch_df(seed_var: float, subject_var: float, seeds: int, subjects: int) -> float:
    """Welch-Satterthwaite degrees of freedom of seed_var + subject_var (infinite when both are 0).

    The seed component enters at its upper 70 % confidence bound (module doc, step 5): from 2-4 seeds the
    plug-in is often far too small, and the plain formula then raises df exactly when the interval is too narrow.
    """
    seed_var *= (seeds - 1) / stats.chi2.ppf(_DF_QUANTILE, seeds - 1)
    den = seed_var ** 2 / (seeds - 1) + subject_var ** 2 / (subjects - 1)
    return (seed_var + subject_var) ** 2 / den if den > 0 else math.inf


def _estimate(arms: list[tuple[tuple[np.ndarray, np.ndarray], float]], bounds: tuple[float, float],
              level: float, n_boot: int, seed: int) -> Estimate:
    """The signed sum over ``arms`` ((correct, total), sign) of accuracies, with the method of the module doc."""
    if not 0 < level < 1:
        raise ValueError(f"level={level}: must be between 0 and 1")
    if n_boot < 2:
        raise ValueError(f"n_boot={n_boot}: need at least 2 bootstrap draws")
    s, j = arms[0][0][0].shape
    if j < 2:
        raise ValueError(f"{j} subject: the subject spread needs at least 2 subjects")
    per_seed = sum(sign * c.sum(1) / n.sum(1) for (c, n), sign in arms)
    value = float(per_seed.mean())

    rng = np.random.default_rng(seed)
    draws = []
    for start in range(0, n_boot, max(1, _BLOCK // j)):
        pick = rng.integers(0, j, size=(min(n_boot - start, max(1, _BLOCK // j)), j))
        draws.append(sum(sign * c.mean(0)[pick].sum(1) / n.mean(0)[pick].sum(1) for (c, n), sign in arms))
    subject_var = float(np.concatenate(draws).var() * j / (j - 1))

    if s == 1:
        seed_var, df = None, float(j - 1)
    else:
        seed_var = float(per_seed.var(ddof=1) / s)
        z = sum(sign * (c - c.sum() / n.sum() * n) / n.sum(1, keepdims=True) for (c, n), sign in arms)
        resid = z - z.mean(0) - z.mean(1, keepdims=True) + z.mean()
        subject_var = max(subject_var - j * float((resid ** 2).sum()) / (s * (s - 1) * (j - 1)), 0.0)
        df = _welch_df(seed_var, subject_var, s, j)
    se = math.sqrt((seed_var or 0.0) + subject_var)
    half = float(stats.t.ppf((1 + level) / 2, df)) * se
    if se > 0:
        p_value = float(2 * stats.t.sf(abs(value) / se, df))
    else:
        p_value = 1.0 if value == 0 else 0.0
    return Estimate(value, max(value - half, bounds[0]), min(value + half, bounds[1]), se, float(df), p_value, s, j,
                    seed_var, subject_var, level)
