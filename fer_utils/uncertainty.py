"""Accuracy intervals and comparisons of training configurations ("arms") that respect how the data is made.

Why not the face bootstrap
    Test faces come in clusters: the frames of one clip, the six expressions of one person. Faces of one
    subject are read right or wrong together, so treating faces as independent counts every subject several
    times over and gives intervals that are too narrow (in the tests: about 80 % coverage for a nominal 95 %
    with 25 subjects). It also sees one trained model only, while the seed-to-seed spread of training is
    usually the larger part of the uncertainty of "configuration X reaches Y %".

Design
    Two crossed random factors: test subjects (the clusters) and training seeds; every seed's model is scored
    on the same faces. Per run and test set the input is ``subject -> (correct, total)``; an arm is one such
    mapping per seed. A comparison matches subjects by id (both arms read the same test faces: paired) but not
    seeds: two arms share no randomness beyond a seed's number, so each arm's seeds are an independent sample
    and the answer cannot depend on how they are numbered (arms may have different numbers of seeds).

Method (name: cluster-robust linearised variance components, Satterthwaite df, effective-n Wilson interval;
MOVER for differences)
    1. Estimate: a run's accuracy is sum(correct) / sum(total); an arm's is the mean over its seeds; a
       difference is arm mean minus arm mean. A subject with no faces is no cluster and is dropped.
    2. Linearise: cell z_sj = J (c_sj - acc n_j) / N (N faces, J subjects), so that a seed's accuracy minus the
       arm's is the mean of its row. The arm mean's variance is Var(mean z) = (MS_subject + MS_seed -
       MS_residual) / (S J) in the two-way ANOVA of z (subject, seed and subject x seed effects; the faces'
       binomial noise acts as the interaction).
    3. Seed component, per arm: the sample variance (ddof=1) of its per-seed accuracies over S, which is
       (MS_seed) / (S J); unmeasurable with one seed (``seed_var`` is None, the interval covers subjects only).
       For a difference the arms' seed components add (independent seeds).
    4. Subject component: the variance over subjects of the seed-averaged z (of z_A - z_B for a difference,
       the paired part) over J, less each arm's MS_residual / (S J), which step 3 already counts (floored at 0).
       This is the cluster-robust (sandwich) variance of a ratio estimator with subjects as clusters; it stays
       fixed when more seeds are run, which ``Estimate.mdd`` relies on.
    5. Degrees of freedom: Welch-Satterthwaite from the components (subject: J - 1; each arm's seed part:
       S - 1). No tuned constant: where 2 seeds carry most of the variance the plug-in df is optimistic and an
       accuracy's coverage falls to 89-92 %; docs/statistics.md gives the measured grid.
    6. Interval for an accuracy: Wilson's score interval with a t quantile (df of step 5) and the effective
       number of faces n_eff = acc (1 - acc) / V (as many independent faces as give the variance V; N / n_eff is
       the design effect of the clusters and seeds). It stays inside [0, 1] and is asymmetric near the bounds,
       where a Wald interval under-covered (81-86 % at 97-99 % accuracy). At 0 or 100 % (or where nothing
       varies) V is 0 and the design effect cannot be estimated: n_eff = J, its largest value (a subject's
       faces read as one), so the interval never has zero width.
    7. Interval for a difference: Newcombe's MOVER from the two arms' step-6 intervals, with the correlation of
       the arm means that makes its interior limit the t interval of the difference's variance (steps 3-4). It
       stays inside [-1, 1]. p-value: the level at which the interval reaches 0 (so p < 0.05 exactly when the
       95 % interval excludes 0); an accuracy's p-value tests value == 0 the same way.
    8. Minimal detectable difference: (t_{1-alpha/2} + t_power) sqrt(seed part at S' seeds per arm + subject
       part + what the interval adds near 0 or 100 %), df as in step 5; with one seed only the subjects-only
       floor is known. Nothing to scale from (zero width, zero variance): an error, never a difference of 0.
    Non-finite input counts are refused by name; an interval whose limits are not finite gets p NaN, never 0.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import optimize, stats

Counts = Mapping[str, Sequence[int]]  # subject -> (correct, total) of one run on one test set

_SMALLEST_P = 1e-12  # p-values are searched down to this; an interval excluding 0 even there reports it


def subject_counts(correct: np.ndarray, subjects: np.ndarray) -> dict[str, list[int]]:
    """Per-subject [correct, total] from per-face 0/1 (or bool) outcomes and per-face subject ids.

    What a run record keeps: the intervals work on subjects, so the faces' order and labels are not needed.
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
    se: float  # sqrt of the variance components: 0 where nothing varies (the interval is then still not empty)
    df: float
    p_value: float  # two-sided test of value == 0 (meaningful for differences); NaN where undefined
    seeds: int  # of the arm (of arm a for a difference)
    subjects: int
    seed_var: float | None  # None with one seed in an arm: the seed spread is not measured, the interval omits it
    subject_var: float
    level: float = 0.95
    seeds_b: int | None = None  # arm b's seeds for a difference (unpaired: it may differ from ``seeds``)
    seed_unit_var: float | None = None  # sum over arms of seed variance x seeds: the seed part is this / seeds

    @property
    def seed_spread_measured(self) -> bool:
        """False for one seed: the interval then covers test subjects only, a lower bound on the uncertainty."""
        return self.seed_var is not None

    @property
    def defined(self) -> bool:
        """False where a variance was not finite: every number but the value is then NaN."""
        return math.isfinite(self.se)

    def seeds_text(self) -> str:
        """``3`` for an accuracy or equal arms, ``3 vs 2`` for a difference of arms with different seed counts."""
        return str(self.seeds) if self.seeds_b in (None, self.seeds) else f"{self.seeds} vs {self.seeds_b}"

    def mdd(self, seeds: int | None = None, alpha: float = 0.05, power: float = 0.8) -> float:
        """Minimal difference a comparison with ``seeds`` seeds per arm (default: as here) detects.

        Two-sided level ``alpha`` with probability ``power``; the seed component scales as 1/seeds, the subject
        component stays. With the seed spread unmeasured this is the subjects-only floor (``seeds`` cannot help
        it): print it as "≥ x (1 seed: seed spread not measured)". It assumes the components stay as measured;
        near 100 % accuracy the spread shrinks and the real power is somewhat higher. Where nothing varied there
        is nothing to scale from: ValueError, never a detectable difference of 0.
        """
        if self.seed_var is None:
            var, df = self.subject_var, float(self.subjects - 1)
        else:
            planned = self.seeds if seeds is None else seeds
            if planned < 2:
                raise ValueError(f"seeds={planned}: a comparison needs at least 2 seeds to measure the seed spread")
            arms = 1 if self.seeds_b is None else 2
            seed_part = self.seed_var if seeds is None else self.seed_unit_var / planned
            var = seed_part + self.subject_var
            df = self.df if seeds is None else _satterthwaite([(seed_part, arms * (planned - 1)),
                                                               (self.subject_var, self.subjects - 1)])
        # near 0 or 100 % the interval is wider than the components say (module doc, step 6): keep that excess
        implied = ((self.high - self.low) / (2 * stats.t.ppf((1 + self.level) / 2, self.df))) ** 2
        var += max(implied - (self.seed_var or 0.0) - self.subject_var, 0.0)
        if not var > 0:
            raise ValueError("nothing varied across seeds and subjects: no smallest detectable difference to estimate")
        return float((stats.t.ppf(1 - alpha / 2, df) + stats.t.ppf(power, df)) * math.sqrt(var))

    def text(self, points: bool = False) -> str:
        """"61.2 % [58.0, 64.4]" for an accuracy; "+3.1 pts [-0.5, +6.7]" for a difference (``points``)."""
        if points:
            return f"{100 * self.value:+.1f} pts [{100 * self.low:+.1f}, {100 * self.high:+.1f}]"
        return f"{100 * self.value:.1f} % [{100 * self.low:.1f}, {100 * self.high:.1f}]"


@dataclass(frozen=True)
class _Arm:
    """One arm's seeds x subjects counts, linearised (module doc, step 2)."""

    correct: np.ndarray
    totals: np.ndarray  # per subject (the same in every seed)

    @property
    def seeds(self) -> int:
        return self.correct.shape[0]

    @property
    def per_seed(self) -> np.ndarray:
        return self.correct.sum(1) / self.totals.sum()

    @property
    def z(self) -> np.ndarray:
        acc = self.per_seed.mean()
        return self.totals.size * (self.correct - acc * self.totals) / self.totals.sum()

    def seed_var(self) -> float | None:
        return None if self.seeds < 2 else float(self.per_seed.var(ddof=1) / self.seeds)

    def residual(self) -> float:
        """MS_residual / (S J): the seed x subject share both components count (0 with one seed: not removed)."""
        s, j = self.correct.shape
        if s < 2:
            return 0.0
        z = self.z
        resid = z - z.mean(0) - z.mean(1, keepdims=True) + z.mean()
        return float((resid ** 2).sum()) / ((s - 1) * (j - 1)) / (s * j)


def accuracy(runs: Sequence[Counts], level: float = 0.95) -> Estimate:
    """Accuracy of an arm (one run per training seed, same test faces) with its two-level interval."""
    _check_level(level)
    (arm,) = _clusters(_arm(runs, "runs", _subject_ids(runs, "runs")))
    value = float(arm.per_seed.mean())
    var, seed_var, subject_var, df = _components([arm], arm.z.mean(0))
    low, high = _wilson(value, var, df, level, arm)
    p_value = _p_value(value, lambda lv: _wilson(value, var, df, lv, arm))
    return Estimate(value, low, high, math.sqrt(var), df, p_value, arm.seeds, arm.totals.size, seed_var,
                    subject_var, level, None, _unit(seed_var, [arm]))


def difference(a: Sequence[Counts], b: Sequence[Counts], level: float = 0.95) -> Estimate:
    """Accuracy of arm ``a`` minus arm ``b``: each arm's seeds independent, subjects matched by id (paired)."""
    _check_level(level)
    ids = _subject_ids(a, "a")
    missing = sorted(set(ids) ^ set(_subject_ids(b, "b")), key=str)
    if missing:
        side = "a" if missing[0] in ids else "b"
        raise ValueError(f"subject {missing[0]!r} is in {side} but not in {'b' if side == 'a' else 'a'}: "
                         "a comparison needs the same test set")
    arm_a, arm_b = _arm(a, "a", ids), _arm(b, "b", ids)
    if not np.array_equal(arm_a.totals, arm_b.totals):
        k = int(np.flatnonzero(arm_a.totals != arm_b.totals)[0])
        raise ValueError(f"a has {int(arm_a.totals.sum())} faces, b {int(arm_b.totals.sum())} (subject "
                         f"{ids[k]!r}: {int(arm_a.totals[k])} against {int(arm_b.totals[k])}): a comparison needs "
                         "the same test faces in both arms")
    arm_a, arm_b = _clusters(arm_a, arm_b)
    acc_a, acc_b = float(arm_a.per_seed.mean()), float(arm_b.per_seed.mean())
    value = acc_a - acc_b
    var, seed_var, subject_var, df = _components([arm_a, arm_b], arm_a.z.mean(0) - arm_b.z.mean(0))
    if seed_var is None:  # an arm has one seed: both arms' intervals cover subjects only
        var_a, var_b = (float(arm.z.mean(0).var(ddof=1) / arm.totals.size) for arm in (arm_a, arm_b))
    else:
        var_a, var_b = (_components([arm], arm.z.mean(0))[0] for arm in (arm_a, arm_b))
    # the correlation of the arm means that gives back the difference's variance (0 where an arm has none)
    r = min(max((var_a + var_b - var) / (2 * math.sqrt(var_a * var_b)), -1.0), 1.0) if var_a * var_b > 0 else 0.0

    def mover(lv: float) -> tuple[float, float]:
        """Newcombe's MOVER limits of a - b from the arms' Wilson limits (module doc, step 7)."""
        (la, ua), (lb, ub) = _wilson(acc_a, var_a, df, lv, arm_a), _wilson(acc_b, var_b, df, lv, arm_b)
        low = value - math.sqrt(max((acc_a - la) ** 2 + (ub - acc_b) ** 2 - 2 * r * (acc_a - la) * (ub - acc_b), 0))
        high = value + math.sqrt(max((ua - acc_a) ** 2 + (acc_b - lb) ** 2 - 2 * r * (ua - acc_a) * (acc_b - lb), 0))
        return max(low, -1.0), min(high, 1.0)

    low, high = mover(level)
    p_value = _p_value(value, mover)
    return Estimate(value, low, high, math.sqrt(var), df, p_value, arm_a.seeds, arm_a.totals.size, seed_var,
                    subject_var, level, arm_b.seeds, _unit(seed_var, [arm_a, arm_b]))


def _check_level(level: float) -> None:
    if not 0 < level < 1:
        raise ValueError(f"level={level}: must be between 0 and 1")


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


def _arm(runs: Sequence[Counts], name: str, ids: list[str]) -> _Arm:
    """Checked counts of one arm, subjects in ``ids`` order.

    Checks: (correct, total) pairs of finite counts, 0 <= correct <= total, faces in every run, every seed
    scored on as many faces per subject.
    """
    for i, run in enumerate(runs):
        for sid in ids:
            pair = run[sid]
            if len(pair) != 2:
                raise ValueError(f"{name}: run {i}, subject {sid!r}: {pair!r} is not a (correct, total) pair")
            if not all(math.isfinite(x) for x in pair):
                raise ValueError(f"{name}: run {i}, subject {sid!r}: {pair!r} is not a pair of finite counts")
            if pair[0] < 0 or pair[1] < pair[0]:
                raise ValueError(f"{name}: run {i}, subject {sid!r}: {pair!r} needs 0 <= correct <= total")
        if sum(run[sid][1] for sid in ids) == 0:
            raise ValueError(f"{name}: run {i} has no faces")
    counts = np.asarray([[run[sid] for sid in ids] for run in runs], dtype=float)
    correct, totals = counts[..., 0], counts[..., 1]
    odd = np.flatnonzero((totals != totals[0]).any(0))
    if odd.size:
        k = int(odd[0])
        i = int(np.flatnonzero(totals[:, k] != totals[0, k])[0])
        raise ValueError(f"{name}: subject {ids[k]!r} has {int(totals[0, k])} faces in run 0 but {int(totals[i, k])} "
                         f"in run {i}; every seed must be scored on the same test faces")
    return _Arm(correct, totals[0])


def _clusters(*arms: _Arm) -> tuple[_Arm, ...]:
    """The arms without subjects that have no faces (no cluster), checked to keep at least 2 subjects."""
    kept = arms[0].totals > 0
    if kept.sum() < 2:
        raise ValueError(f"{int(kept.sum())} subject with faces: the subject spread needs at least 2 subjects")
    return tuple(_Arm(arm.correct[:, kept], arm.totals[kept]) for arm in arms)


def _satterthwaite(parts: Sequence[tuple[float, int]]) -> float:
    """Welch-Satterthwaite df of a sum of variance components (variance, df); infinite when all are 0 (the
    callers then use the subjects' df)."""
    total = sum(v for v, _ in parts)
    den = sum(v ** 2 / d for v, d in parts if d > 0)
    return total ** 2 / den if den > 0 else math.inf


def _components(arms: Sequence[_Arm], subject_z: np.ndarray) -> tuple[float, float | None, float, float]:
    """(variance, seed part or None, subject part, df) of the signed sum of ``arms``' means (module doc, 3-5).

    ``subject_z`` is the seed-averaged linearised value per subject of that signed sum.
    """
    j = subject_z.size
    raw = float(subject_z.var(ddof=1) / j)
    seed_vars = [arm.seed_var() for arm in arms]
    if any(v is None for v in seed_vars):
        return raw, None, raw, float(j - 1)
    subject_var = max(raw - sum(arm.residual() for arm in arms), 0.0)
    seed_var = float(sum(seed_vars))
    df = _satterthwaite([(v, arm.seeds - 1) for v, arm in zip(seed_vars, arms)] + [(subject_var, j - 1)])
    return seed_var + subject_var, seed_var, subject_var, df if math.isfinite(df) else float(j - 1)


def _unit(seed_var: float | None, arms: Sequence[_Arm]) -> float | None:
    """Sum over arms of seed variance x seeds: with S seeds per arm the seed part is this / S."""
    return None if seed_var is None else float(sum(arm.seed_var() * arm.seeds for arm in arms))


def _wilson(value: float, var: float, df: float, level: float, arm: _Arm) -> tuple[float, float]:
    """Wilson score limits of an accuracy with n_eff = value (1 - value) / var and a t quantile (module doc, 6)."""
    spread = value * (1 - value)
    if var > 0 and spread > 0:
        n_eff = spread / var
    else:  # nothing varies: the design effect at its largest, one face per subject, and the subjects' df
        n_eff, df = arm.totals.size, arm.totals.size - 1
    q = float(stats.t.ppf((1 + level) / 2, df))
    centre = (value + q * q / (2 * n_eff)) / (1 + q * q / n_eff)
    half = q / (1 + q * q / n_eff) * math.sqrt(spread / n_eff + q * q / (4 * n_eff * n_eff))
    return max(min(float(centre - half), value), 0.0), min(max(float(centre + half), value), 1.0)  # float noise


def _p_value(value: float, limits: Callable[[float], tuple[float, float]]) -> float:
    """The two-sided p-value of value == 0 that matches ``limits(level)``: 1 - the level whose limit reaches 0."""
    if not math.isfinite(value) or any(not math.isfinite(x) for x in limits(0.5)):
        return math.nan
    if value == 0:
        return 1.0
    side, sign = (0, 1.0) if value > 0 else (1, -1.0)

    def gap(alpha: float) -> float:  # > 0 while the interval at level 1 - alpha excludes 0
        return sign * limits(1 - alpha)[side]

    if gap(_SMALLEST_P) > 0:
        return _SMALLEST_P
    return float(optimize.brentq(gap, _SMALLEST_P, 1.0, xtol=1e-10))


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values of one family (NaN: no test, not counted in the family, stays NaN).

    A row reads "helps" only when its adjusted p is below alpha: the chance that any of the family's true nulls
    reads so stays at most alpha, whatever the rows' dependence, where row-by-row tests at 5 % would flag about
    one null row in twenty.
    """
    tested = [i for i, p in enumerate(p_values) if math.isfinite(p)]
    adjusted = [math.nan] * len(p_values)
    running = 0.0
    for rank, i in enumerate(sorted(tested, key=lambda i: p_values[i])):
        running = max(running, min(1.0, (len(tested) - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted
