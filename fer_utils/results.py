"""Read what the experiments saved: find runs, re-score them, summarise across seeds, tabulate.

06_cross_eval and 07_sota start from here, so they work on whatever ``results/`` holds: the
trained weights are re-evaluated on the MMI and CK+ copies the current config points at (the
embedded world or your licensed databases), not only read back from the JSON.
"""
from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from . import paper
from .config import Config, DataError
from .evaluate import paired_sign_flip_test
from .experiments import RunResult, cross_database_sets, score
from .models.io import load_model
from .preprocess import FaceSet
from .report import pct
from .runtime import file_sha256


@dataclass(frozen=True)
class Summary:
    """Mean accuracy of n seeds with a 95% CI (t across seeds; the bootstrap CI when n = 1)."""

    mean: float
    low: float
    high: float
    n: int

    def text(self) -> str:
        """``61.2 % [58.0, 64.4] (n=3)`` for tables."""
        return f"{pct(self.mean, (self.low, self.high))} (n={self.n})"


def find_runs(cfg: Config) -> list[RunResult]:
    """Every saved run under ``cfg.results_dir`` whose weights are the file its record pins (others: named, skipped)."""
    runs = []
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
        if saved.get("weights_sha256") != file_sha256(path.with_suffix(".safetensors")):
            print(f"skipped {path}: its .safetensors is not the file the record pins (damaged, from another run, "
                  "or saved before records pinned weights); run it again (sweep or the notebook)")
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
        metrics = run.metrics | score(model, sets, cfg.device, run.seed)
        out.append(RunResult(run.experiment, run.ratio, run.seed, run.name, run.path, metrics, run.history))
    return out


def summarise(runs: Sequence[RunResult], key: str) -> Summary:
    """Accuracy on split/database ``key`` of several seeds of one configuration."""
    if not runs:
        raise ValueError(f"no runs to summarise for {key!r}")
    accs = np.array([r.metrics[key]["accuracy"] for r in runs])
    if len(accs) == 1:
        low, high = runs[0].metrics[key]["accuracy_ci95"]
        return Summary(float(accs[0]), low, high, 1)
    half = stats.t.ppf(0.975, len(accs) - 1) * accs.std(ddof=1) / np.sqrt(len(accs))
    mean = float(accs.mean())
    return Summary(mean, max(0.0, mean - half), min(1.0, mean + half), len(accs))


def group_runs(runs: Sequence[RunResult]) -> dict[tuple[str, int], list[RunResult]]:
    """Runs keyed by (experiment, ratio), seeds together, in the paper's order."""
    groups: dict[tuple[str, int], list[RunResult]] = defaultdict(list)
    for run in runs:
        groups[(run.experiment, run.ratio)].append(run)
    order = {"real": 0, "synth": 1, "mix": 2, "vgg": 3}
    return dict(sorted(groups.items(), key=lambda item: (order.get(item[0][0], 9), item[0][1])))


def group_label(experiment: str, ratio: int) -> str:
    """Short label of a configuration: ``real``, ``synth``, ``k=5``, ``vgg16``, ``vgg16 k=5``."""
    if experiment == "mix":
        return f"k={ratio}"
    if experiment == "vgg":
        return "vgg16" + (f" k={ratio}" if ratio else "")
    return experiment


def accuracy_rows(runs: Sequence[RunResult], keys: Sequence[str]) -> list[list[str]]:
    """One row per configuration: label, seeds, then each key's mean [CI] ('–' where not scored)."""
    rows = []
    for (experiment, ratio), members in group_runs(runs).items():
        cells = [summarise(members, k).text() if all(k in r.metrics for r in members) else "–" for k in keys]
        rows.append([group_label(experiment, ratio), str(len(members)), *cells])
    return rows


def ratio_points(runs: Sequence[RunResult], key: str) -> tuple[list[str], list[float], list[float], list[float]]:
    """Figure 8's points on ``key``: real-only, synth-only, then k = 1, 2, ... (CNN runs only)."""
    labels, mean, low, high = [], [], [], []
    for (experiment, ratio), members in group_runs(runs).items():
        if experiment == "vgg":
            continue
        s = summarise(members, key)
        labels.append(group_label(experiment, ratio))
        mean.append(s.mean)
        low.append(s.low)
        high.append(s.high)
    return labels, mean, low, high


def best_run(runs: Sequence[RunResult], experiment: str | None = None) -> RunResult:
    """The run with the highest validation accuracy (never chosen on a test set)."""
    pool = [r for r in runs if experiment is None or r.experiment == experiment]
    if not pool:
        raise ValueError(f"no saved runs of experiment {experiment!r}")
    return max(pool, key=lambda r: r.metrics["val"]["accuracy"])


def paper_rows(ours: dict[str, Summary], paper: dict[str, float], keys: Sequence[str]) -> list[list[str]]:
    """Paper-vs-ours rows for ``keys`` ('–' where the paper reports no number)."""
    return [[key, pct(paper.get(key)), ours[key].text()] for key in keys]


def real_val_accuracy(run: RunResult) -> float | None:
    """Accuracy on the real validation subjects (what chooses k); None for synthetic-only runs."""
    if "val_real" in run.metrics:
        return run.metrics["val_real"]["accuracy"]
    return None if run.experiment == "synth" else run.metrics["val"]["accuracy"]


def best_configuration(runs: Sequence[RunResult], experiments: Sequence[str] = ("real", "mix")) -> list[RunResult]:
    """Seeds of the configuration with the best mean real-validation accuracy (never a test score).

    A tie goes to the configuration with the least generated data (real-only first, then the smallest k).
    """
    groups = {key: members for key, members in group_runs(runs).items() if key[0] in experiments}
    if not groups:
        raise ValueError(f"no saved runs of {', '.join(experiments)}")

    def score(item: tuple[int, list[RunResult]]) -> tuple[float, int]:
        order, members = item  # group_runs lists real-only first, then k upwards
        mean = float(np.mean([real_val_accuracy(r) for r in members]))
        return round(mean, 9), -order  # rounded: equal totals of correct faces must tie, whatever the summing order

    return max(enumerate(groups.values()), key=score)[1]


def table2_rows(runs: Sequence[RunResult]) -> list[list[str]]:
    """Table 2 (real + k x generated): the paper's train/test beside ours, plus what it does not report."""
    rows = []
    for (experiment, ratio), members in group_runs(runs).items():
        if experiment != "mix":
            continue
        reported = paper.reported(experiment, ratio)
        cells = [summarise(members, key).text() for key in ("train", "test", "test_real", "mmi", "ckplus")]
        rows.append([str(ratio), pct(reported.get("train")), cells[0], pct(reported.get("test")), *cells[1:]])
    return rows


TABLE2_HEADER = ("k", "train (paper)", "train (ours)", "test (paper)", "test (ours)", "test, real subjects",
                 "MMI", "CK+")


def paired_rows(runs: Sequence[RunResult], keys: Sequence[str] = ("mmi", "ckplus")) -> list[list[str]]:
    """Each k against real-only with seeds matched: mean gain and a sign-flip p-value per database."""
    groups = group_runs(runs)
    base = {r.seed: r for r in groups.get(("real", 0), [])}
    rows = []
    for (experiment, ratio), members in groups.items():
        paired = [(r, base[r.seed]) for r in members if experiment == "mix" and r.seed in base]
        if not paired:
            continue
        cells = []
        for key in keys:
            test = paired_sign_flip_test([r.metrics[key]["accuracy"] for r, _ in paired],
                                         [b.metrics[key]["accuracy"] for _, b in paired])
            cells.append(f"{100 * test['mean_diff']:+.1f} pts (p = {test['p_value']:.2f})")
        rows.append([str(ratio), str(len(paired)), *cells])
    return rows


def table3_rows(ours: Sequence[tuple[str, Sequence[RunResult]]]) -> list[list[str]]:
    """Table 3 and §4.4: our models on MMI and CK+, then the paper's and the literature's (quoted)."""
    rows = [[f"{name} (*this run*)", summarise(runs, "mmi").text(), summarise(runs, "ckplus").text()]
            for name, runs in ours]
    rows += [["VGG16, real (paper)", pct(paper.VGG16_MMI), "–"],
             ["CNN, real + 5 x generated (paper)", pct(paper.FIG8_BEST["mmi"]), pct(paper.BEST_CKPLUS)]]
    rows += [[f"{who}, trained on {data} (quoted by the paper)", "–", pct(acc)]
             for who, data, acc in paper.TABLE3_LITERATURE[1:]]
    return rows
