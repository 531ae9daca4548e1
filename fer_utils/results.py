"""Read what the experiments saved: find runs, re-score them, summarise across seeds, tabulate.

06_cross_eval and 07_sota start from here, so they work on whatever ``results/`` holds of the
current data (a run of other data is named and left out, never averaged in): the trained weights
are re-evaluated on the MMI and CK+ copies the current config points at (the embedded world or
your licensed databases), not only read back from the JSON.
"""
from __future__ import annotations

import functools
import json
import math
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np

from . import paper
from .config import EXPERIMENTS, Config, DataError
from .experiments import SCORING, RunResult, cross_database_sets, current_identity, score
from .filtering import FilterReport, reports_of
from .identity import mismatch
from .models.io import load_model
from .preprocess import FaceSet
from .report import pct
from .runtime import file_sha256
from .uncertainty import Estimate, accuracy, difference, holm


def find_runs(cfg: Config) -> list[RunResult]:
    """Every saved run under ``cfg.results_dir`` whose weights are the file its record pins and whose identity (data,
    params, code) is the current one (others: named, skipped), so no table mixes runs of different data or code.

    The data are checked as the sweep checks them (``experiments.current_identity``, once per configuration).
    """
    runs = []
    current = functools.cache(functools.partial(current_identity, cfg))
    for path in sorted(cfg.path(cfg.results_dir).glob("*/*.json")):
        if not path.with_suffix(".safetensors").is_file():
            continue
        try:
            saved = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise DataError(f"{path}: unreadable run record ({exc}); delete it and its .safetensors and run "
                            "it again (sweep or the notebook)") from None
        if not isinstance(saved, dict) or "experiment" not in saved or "metrics" not in saved:
            continue
        if saved["params"].get("scoring") != SCORING:
            print(f"skipped {path}: scored before records kept per-subject counts (what the intervals resample); "
                  "run it again (sweep or the notebook)")
            continue
        if saved.get("weights_sha256") != file_sha256(path.with_suffix(".safetensors")):
            print(f"skipped {path}: its .safetensors is not the file the record pins (damaged, from another run, "
                  "or saved before records pinned weights); run it again (sweep or the notebook)")
            continue
        now = current(saved["experiment"], saved["params"]["ratio"])
        if reason := "its current data cannot be read" if now is None else mismatch(saved.get("identity"), now):
            print(f"skipped {path}: {reason}; run it again (sweep or the notebook)")
            continue
        runs.append(RunResult(saved["experiment"], saved["params"]["ratio"], saved["seed"], saved["run"], path,
                              saved["metrics"], saved["history"]))
    return runs


def rescore(cfg: Config, runs: Sequence[RunResult], sets: dict[str, FaceSet] | None = None) -> list[RunResult]:
    """The same runs with MMI and CK+ (or ``sets``) metrics recomputed from their saved weights."""
    sets = sets if sets is not None else cross_database_sets(cfg)
    out = []
    for run in runs:
        model = load_model(run.path.with_suffix(".safetensors"))
        metrics = run.metrics | score(model, sets, cfg.device)
        out.append(RunResult(run.experiment, run.ratio, run.seed, run.name, run.path, metrics, run.history))
    return out


def scored(run: RunResult, key: str) -> dict[str, Any] | None:
    """A run's metrics on ``key``, None where it was not scored there; a model trained on real faces only has its
    real subjects under ``test``/``val``, which are then what ``test_real``/``val_real`` mean."""
    if key not in run.metrics and key in {"test_real", "val_real"} and run.experiment in {"real", "vgg"} \
            and not run.ratio:
        key = key.removesuffix("_real")
    return run.metrics.get(key)


def with_seeds(estimate: Estimate) -> str:
    """``61.2 % [58.0, 64.4] (n=3)``: a table cell that says how many seeds its interval rests on."""
    return f"{estimate.text()} (n={estimate.seeds})"


def summarise(runs: Sequence[RunResult], key: str) -> Estimate:
    """Accuracy on split/database ``key`` of the seeds of one configuration, over seeds and test subjects."""
    if not runs:
        raise ValueError(f"no runs to summarise for {key!r}")
    missing = [r.name for r in runs if scored(r, key) is None]
    if missing:
        raise ValueError(f"{', '.join(missing)} not scored on {key!r}")
    return accuracy([scored(r, key)["by_subject"] for r in runs])


def group_runs(runs: Sequence[RunResult]) -> dict[tuple[str, int], list[RunResult]]:
    """Runs keyed by (experiment, ratio), seeds together, in the paper's order."""
    groups: dict[tuple[str, int], list[RunResult]] = defaultdict(list)
    for run in runs:
        groups[(run.experiment, run.ratio)].append(run)
    order = {name: i for i, name in enumerate(EXPERIMENTS)}
    return dict(sorted(groups.items(), key=lambda item: (order.get(item[0][0], len(order)), item[0][1])))


def group_label(experiment: str, ratio: int) -> str:
    """Short label of a configuration: ``real``, ``synth k=1``, ``k=5``, ``filtered k=5``, ``vgg16``, ``vgg16 k=5``."""
    if experiment == "mix":
        return f"k={ratio}"
    if experiment in {"synth", "mix-filtered"}:
        return f"{experiment.removeprefix('mix-')} k={ratio}"
    if experiment == "vgg":
        return "vgg16" + (f" k={ratio}" if ratio else "")
    return experiment


def accuracy_rows(runs: Sequence[RunResult], keys: Sequence[str]) -> list[list[str]]:
    """One row per configuration: label, seeds, then each key's mean [CI] ('–' where not scored)."""
    rows = []
    for (experiment, ratio), members in group_runs(runs).items():
        cells = [summarise(members, k).text() if all(scored(r, k) for r in members) else "–" for k in keys]
        rows.append([group_label(experiment, ratio), str(len(members)), *cells])
    return rows


def arm_curves(runs: Sequence[RunResult], key: str) -> dict[str, list[tuple[int, Estimate]]]:
    """Figure 8's lines on ``key``: each arm's (k, estimate) in k order; real-only is the line at k = 0."""
    curves: dict[str, list[tuple[int, Estimate]]] = defaultdict(list)
    for (experiment, ratio), members in group_runs(runs).items():
        if experiment != "vgg" and all(scored(r, key) for r in members):
            curves[experiment].append((ratio, summarise(members, key)))
    return dict(curves)


def figure8(runs: Sequence[RunResult], keys: Sequence[str] = ("test_real", "mmi", "ckplus")) -> tuple[dict, dict]:
    """``plots.ratio_curve``'s panels and real-only baselines: each arm's accuracy against k on every test set."""
    panels, baseline = {}, {}
    for key in keys:
        curves = arm_curves(runs, key)
        line = {arm: ([k for k, _ in points], *([getattr(e, f) for _, e in points] for f in ("value", "low", "high")))
                for arm, points in curves.items() if arm != "real"}
        panels[TARGETS[key]] = line
        if "real" in curves:
            (_, e), = curves["real"]
            baseline[TARGETS[key]] = ([0], [e.value], [e.low], [e.high])
    return panels, baseline


def filter_reports(runs: Sequence[RunResult]) -> dict[int, FilterReport]:
    """What the filter kept for each ratio the filtered arm's runs trained on, read from their records."""
    return reports_of([json.loads(r.path.read_text()) for r in runs if r.experiment == "mix-filtered"])


def best_run(runs: Sequence[RunResult], experiment: str | None = None) -> RunResult:
    """The run with the highest validation accuracy (never chosen on a test set)."""
    pool = [r for r in runs if experiment is None or r.experiment == experiment]
    if not pool:
        raise ValueError(f"no saved runs of experiment {experiment!r}")
    return max(pool, key=lambda r: r.metrics["val"]["accuracy"])


def paper_rows(ours: dict[str, Estimate], paper: dict[str, float], keys: Sequence[str]) -> list[list[str]]:
    """Paper-vs-ours rows for ``keys`` ('–' where the paper reports no number)."""
    return [[key, pct(paper.get(key)), with_seeds(ours[key])] for key in keys]


def real_val_accuracy(run: RunResult) -> float | None:
    """Accuracy on the real validation subjects (what chooses k); None for synthetic-only runs."""
    metrics = scored(run, "val_real")
    return None if metrics is None else metrics["accuracy"]


def best_configuration(runs: Sequence[RunResult],
                       experiments: Sequence[str] = ("real", "mix", "mix-filtered")) -> list[RunResult]:
    """Seeds of the configuration with the best mean real-validation accuracy (never a test score).

    A tie goes to the first in ``group_runs``' order: real-only, then each arm's smallest k first (unfiltered
    arms before filtered ones).
    """
    groups = {key: members for key, members in group_runs(runs).items() if key[0] in experiments}
    if not groups:
        raise ValueError(f"no saved runs of {', '.join(experiments)}")

    def score(item: tuple[int, list[RunResult]]) -> tuple[float, int]:
        order, members = item  # group_runs lists real-only first, then k upwards, unfiltered before filtered
        mean = float(np.mean([real_val_accuracy(r) for r in members]))
        return round(mean, 9), -order  # rounded: equal totals of correct faces must tie, whatever the summing order

    return max(enumerate(groups.values()), key=score)[1]


def table3_cnn_rows(runs: Sequence[RunResult]) -> list[tuple[str, list[RunResult]]]:
    """Table 3's CNN rows: real only, and real + k x generated with k chosen among the mixed runs on real
    validation. The mixed row stands even where real-only validates as well: it is the paper's row, not a
    contest's winner (which ``best_configuration`` over both arms names)."""
    rows = [("CNN, real", best_configuration(runs, experiments=("real",)))]
    if any(r.experiment == "mix" for r in runs):
        mix = best_configuration(runs, experiments=("mix",))
        rows.append((f"CNN, real + {mix[0].ratio} x generated (k best on real validation)", mix))
    return rows


def table2_rows(runs: Sequence[RunResult]) -> list[list[str]]:
    """Table 2 (real + k x generated): the paper's train/test beside ours, plus what it does not report."""
    rows = []
    for (experiment, ratio), members in group_runs(runs).items():
        if experiment != "mix":
            continue
        reported = paper.reported(experiment, ratio)
        cells = [with_seeds(summarise(members, key)) for key in ("train", "test", "test_real", "mmi", "ckplus")]
        rows.append([str(ratio), pct(reported.get("train")), cells[0], pct(reported.get("test")), *cells[1:]])
    return rows


TABLE2_HEADER = ("k", "train (paper)", "train (ours)", "test (paper)", "test (ours)", "test, real subjects",
                 "MMI", "CK+")


TARGETS = {"test_real": "real test subjects", "mmi": "MMI", "ckplus": "CK+"}
WHAT_HELPS_HEADER = ("change", "tested on", "seeds", "difference [95 % CI]", "p", "p (Holm)", "smallest detectable",
                     "reading")


Comparison = tuple[str, str, list[RunResult], list[RunResult]]  # kind, what changes, runs with it, runs without


def comparisons(runs: Sequence[RunResult]) -> list[Comparison]:
    """(kind, what changes, runs with it, runs without it): each arm against real-only (``vs-real``), filtered
    against unfiltered at each k (``filter``), synthetic-only k units against one (``scaling``)."""
    groups = group_runs(runs)
    against_real, filtered, scaling = [], [], []
    for (experiment, ratio), members in groups.items():
        if experiment in {"mix", "mix-filtered"} and ("real", 0) in groups:
            against_real.append(("vs-real", f"real + {group_label(experiment, ratio)} vs real only", members,
                                 groups[("real", 0)]))
        if experiment == "mix-filtered" and ("mix", ratio) in groups:
            filtered.append(("filter", f"filtered vs unfiltered, k={ratio}", members, groups[("mix", ratio)]))
        if experiment == "synth" and ratio > 1 and ("synth", 1) in groups:
            scaling.append(("scaling", f"synthetic only: {ratio} units vs 1", members, groups[("synth", 1)]))
    return against_real + filtered + scaling


def paired_difference(with_: Sequence[RunResult], without: Sequence[RunResult], key: str) -> Estimate | None:
    """Difference on ``key`` of two configurations: every seed of each (seeds are not paired across arms, so
    their numbers do not matter), the test subjects paired; None when an arm has no run scored on ``key``."""
    arms = [sorted((r for r in arm if scored(r, key)), key=lambda r: r.seed) for arm in (with_, without)]
    if not all(arms):
        return None
    for arm, scored_runs in zip((with_, without), arms):
        if len(scored_runs) != len(arm):
            missing = sorted(r.name for r in arm if r not in scored_runs)
            raise ValueError(f"{', '.join(missing)} not scored on {key!r} while the other seeds are: re-score them")
    return difference(*([scored(r, key)["by_subject"] for r in arm] for arm in arms))


def testable(estimate: Estimate) -> bool:
    """Whether a difference is a test at all: defined, and something varied."""
    return estimate.defined and estimate.se > 0


def reading(estimate: Estimate, adjusted: float, family: int, alpha: float = 0.05) -> str:
    """What a difference says, in words, at Holm-adjusted p ``adjusted`` among ``family`` comparisons: helps /
    hurts / no measurable difference (and what that means here); with one seed no verdict, only whether it
    exceeds the test subjects' noise."""
    if not estimate.defined:
        return "undefined (a variance is not finite: no interval, no test)"
    if estimate.se == 0:
        return "the same on every test subject and seed (nothing varies: no test)"
    among = f"Holm over {family} comparison{'s' if family != 1 else ''}"
    if not estimate.seed_spread_measured:
        beyond = "beyond" if adjusted < alpha else "within"
        return (f"no verdict (1 seed in an arm: the seed spread is not measured); {beyond} the test subjects' noise "
                f"({among})")
    if adjusted < alpha:
        return f"{'helps' if estimate.value > 0 else 'hurts'}, by {100 * abs(estimate.value):.1f} points ({among})"
    if estimate.p_value < alpha:
        return (f"no verdict: p {estimate.p_value:.3f} alone, but not below {alpha} after the correction "
                f"({among})")
    return (f"no measurable difference: a true one below {100 * estimate.mdd():.1f} points would often be missed, so "
            f"this is not evidence of no effect ({among})")


def what_helps(runs: Sequence[RunResult], keys: Sequence[str] = tuple(TARGETS)) -> list[tuple[str, str, Estimate]]:
    """(change, key, difference) of every comparison on every test set it was scored on."""
    found = []
    for _, change, with_, without in comparisons(runs):
        for key in keys:
            if (estimate := paired_difference(with_, without, key)) is not None:
                found.append((change, key, estimate))
    return found


def _holm_family(found: Sequence[tuple[str, str, Estimate]]) -> tuple[list[float], int]:
    """Holm-adjusted p of every comparison (NaN where it is no test) and the family's size: its tests."""
    family = [e.p_value if testable(e) else math.nan for _, _, e in found]
    return holm(family), sum(math.isfinite(p) for p in family)


def what_helps_rows(runs: Sequence[RunResult], keys: Sequence[str] = tuple(TARGETS)) -> list[list[str]]:
    """One row per change and test set: difference, its CI, p and Holm-adjusted p (the family: every testable
    row of this table), the smallest detectable difference and a reading that names the family's size."""
    found = what_helps(runs, keys)
    adjusted, size = _holm_family(found)
    rows = []
    for (change, key, estimate), p_holm in zip(found, adjusted):
        only = "" if estimate.seed_spread_measured else " (subjects only)"
        floor = "" if estimate.seed_spread_measured else "≥ "
        detectable = f"{floor}{100 * estimate.mdd():.1f} pts" if testable(estimate) else "–"
        p_text = f"{estimate.p_value:.3f}{only}" if testable(estimate) else "–"
        rows.append([change, TARGETS.get(key, key), estimate.seeds_text(), estimate.text(points=True) + only,
                     p_text, f"{p_holm:.3f}" if math.isfinite(p_holm) else "–", detectable,
                     reading(estimate, p_holm, size)])
    return rows


def what_helps_summary(runs: Sequence[RunResult], keys: Sequence[str] = tuple(TARGETS), alpha: float = 0.05) -> str:
    """The what-helps table's reading in words, from its numbers (so it cannot go stale): how many comparisons,
    on how many seeds, which pass Holm's correction and what that can mean."""
    found = what_helps(runs, keys)
    if not found:
        return "No comparison could be made: it needs two configurations scored on the same test set."
    adjusted, size = _holm_family(found)
    seeds = sorted({n for _, _, e in found for n in (e.seeds, e.seeds_b)})
    one_seed = not all(e.seed_spread_measured for _, _, e in found)
    passed = [(c, k, e) for (c, k, e), p in zip(found, adjusted) if p < alpha]
    lines = [f"Read (written from the table): {len(found)} comparison{'s' if len(found) != 1 else ''}, {size} of "
             f"them tests (Holm's correction over those {size}, alpha {alpha}); arms ran {_span(seeds)} "
             f"seed{'s' if seeds[-1] > 1 else ''} each."]
    if one_seed:
        lines.append("Where an arm ran one seed the seed spread is not measured: such a row says only whether a "
                     "difference exceeds what resampling the test subjects gives, never that a change helps; seeds "
                     "alone can move an accuracy by several points.")
    if passed:
        lines.append(f"{len(passed)} pass the correction:")
        caveat = " (one seed: beyond the test subjects' noise only, no verdict)"
        lines += [f"- {change} on {TARGETS.get(key, key)}: {e.text(points=True)}, seeds {e.seeds_text()}"
                  f"{'' if e.seed_spread_measured else caveat}" for change, key, e in passed]
    else:
        lines.append("None passes the correction.")
    lines.append("A row that does not pass is no evidence that the change does nothing: differences below its "
                 "smallest detectable one would often be missed.")
    return "\n".join(lines)


def _span(values: Sequence[int]) -> str:
    return str(values[0]) if values[0] == values[-1] else f"{values[0]}-{values[-1]}"


def detectable_rows(runs: Sequence[RunResult], seeds: Sequence[int] = (1, 3, 5, 10),
                    keys: Sequence[str] = tuple(TARGETS)) -> list[list[str]]:
    """Smallest difference from real-only that S seeds per arm would detect (80 % power, alpha 0.05), from the
    spreads measured here (the median over this preset's arms). One seed gives no valid test once seeds are
    known to spread ('no test'); where they were not measured (one seed here) only its subjects-only floor shows."""
    against_real = [c for c in comparisons(runs) if c[0] == "vs-real"]
    rows = []
    for key in keys:
        estimates = [e for _, _, with_, without in against_real
                     if (e := paired_difference(with_, without, key)) and testable(e)]  # a spread to scale from
        if estimates:
            rows.append([TARGETS.get(key, key), *(_detectable(estimates, n) for n in seeds)])
    return rows


def _detectable(estimates: Sequence[Estimate], seeds: int) -> str:
    """One cell of ``detectable_rows``: the median smallest detectable difference over the arms at ``seeds``."""
    measured = [e for e in estimates if e.seed_spread_measured]
    if measured:
        return "no test" if seeds < 2 else f"{100 * float(np.median([e.mdd(seeds=seeds) for e in measured])):.1f} pts"
    return f"≥ {100 * float(np.median([e.mdd() for e in estimates])):.1f} pts" if seeds == 1 else "–"


def table3_rows(ours: Sequence[tuple[str, Sequence[RunResult]]]) -> list[list[str]]:
    """Table 3 and §4.4: our models on MMI and CK+, then the paper's and the literature's (quoted)."""
    rows = [[f"{name} (*this run*)", with_seeds(summarise(runs, "mmi")), with_seeds(summarise(runs, "ckplus"))]
            for name, runs in ours]
    rows += [["VGG16, real (paper)", pct(paper.VGG16_MMI), "–"],
             ["CNN, real + 5 x generated (paper)", pct(paper.FIG8_BEST["mmi"]), pct(paper.BEST_CKPLUS)]]
    rows += [[f"{who}, trained on {data} (quoted by the paper)", "–", pct(acc)]
             for who, data, acc in paper.TABLE3_LITERATURE[1:]]
    return rows
