"""Metrics of the paper's figures (accuracy, confusion, P/R/F1) plus CIs, paired tests, result files."""
from __future__ import annotations

import itertools
import os
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

from .emotions import EMOTIONS
from .runtime import versions, write_record


def to_predictions(probs_or_preds: np.ndarray) -> np.ndarray:
    """Accept class probabilities (N, C) or predicted labels (N,); return labels (N,)."""
    arr = np.asarray(probs_or_preds)
    return arr.argmax(axis=1) if arr.ndim == 2 else arr.astype(np.int64)


def confusion(preds: np.ndarray, labels: np.ndarray, n_classes: int = len(EMOTIONS)) -> tuple[np.ndarray, np.ndarray]:
    """Counts (true rows, predicted columns) and the row-normalised matrix (empty rows stay 0)."""
    counts = confusion_matrix(labels, preds, labels=list(range(n_classes)))
    rows = counts.sum(axis=1, keepdims=True)
    return counts, np.divide(counts, rows, out=np.zeros(counts.shape), where=rows > 0)


def per_class(preds: np.ndarray, labels: np.ndarray, names: tuple[str, ...] = EMOTIONS) -> dict[str, dict[str, float]]:
    """Precision, recall, F1 and support of every class (Figs 5, 7, 10), 0 where undefined."""
    p, r, f, s = precision_recall_fscore_support(labels, preds, labels=list(range(len(names))), zero_division=0)
    return {n: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
            for i, n in enumerate(names)}


def bootstrap_accuracy_ci(correct: np.ndarray, n_boot: int = 10_000, level: float = 0.95,
                          seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap CI of accuracy.

    Resampling N 0/1 outcomes with replacement gives Binomial(N, acc) hits, so the bootstrap is
    drawn exactly and vectorised without an (n_boot, N) index matrix.
    """
    correct = np.asarray(correct, dtype=bool)
    if correct.size == 0:
        raise ValueError("cannot bootstrap the accuracy of an empty test set")
    rng = np.random.default_rng(seed)
    accs = rng.binomial(correct.size, correct.mean(), size=n_boot) / correct.size
    tail = (1 - level) / 2 * 100
    lo, hi = np.percentile(accs, [tail, 100 - tail])
    return float(lo), float(hi)


def paired_sign_flip_test(a: np.ndarray, b: np.ndarray, n_perm: int = 10_000, seed: int = 0) -> dict[str, float]:
    """Two-sided paired permutation test of mean(a - b) for matched seeds (scipy-free).

    Exact over all 2^n sign flips when that is at most ``n_perm``, Monte Carlo otherwise.
    """
    diff = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    if diff.ndim != 1 or diff.size == 0:
        raise ValueError(f"need two equal-length 1-D samples, got shapes {np.shape(a)} and {np.shape(b)}")
    if 2 ** diff.size <= n_perm:
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=diff.size)))  # (2^n, n)
    else:
        signs = np.random.default_rng(seed).choice((1.0, -1.0), size=(n_perm, diff.size))
    null = np.abs((signs * diff).mean(axis=1))
    observed = abs(diff.mean())
    p = float(np.mean(null >= observed - 1e-12))
    return {"mean_diff": float(diff.mean()), "p_value": p, "n": int(diff.size)}


def evaluate(probs_or_preds: np.ndarray, labels: np.ndarray, names: tuple[str, ...] = EMOTIONS,
             seed: int = 0) -> dict[str, Any]:
    """All metrics of one model on one test set, as a JSON-ready dict."""
    preds, labels = to_predictions(probs_or_preds), np.asarray(labels, dtype=np.int64)
    if preds.shape != labels.shape:
        raise ValueError(f"{preds.shape[0]} predictions for {labels.shape[0]} labels")
    counts, normalised = confusion(preds, labels, len(names))
    classes = per_class(preds, labels, names)
    return {
        "n": int(labels.size),
        "accuracy": float(accuracy_score(labels, preds)),
        "accuracy_ci95": list(bootstrap_accuracy_ci(preds == labels, seed=seed)),
        "macro_f1": float(np.mean([c["f1"] for c in classes.values()])),
        "per_class": classes,
        "confusion": counts.tolist(),
        "confusion_normalised": normalised.round(6).tolist(),
        "classes": list(names),
    }


def save_run(results_dir: str | os.PathLike, experiment: str, run_name: str, params: dict[str, Any], seed: int,
             data_hash: str, metrics: dict[str, Any], history: dict[str, list[float]] | None = None,
             fit: dict[str, Any] | None = None, data: dict[str, Any] | None = None) -> Path:
    """Write ``results/<experiment>/<run>.json`` atomically with params, seed, data hash, versions.

    ``fit`` holds how training went (best and stopped epoch, seconds, images/s); ``data`` where each
    database's faces came from (embedded world or your files, path, file count, content hash).
    """
    payload = {"experiment": experiment, "run": run_name, "seed": seed, "data_hash": data_hash,
               "params": params, "data": data or {}, "metrics": metrics, "history": history or {},
               "fit": fit or {}, "versions": versions()}
    return write_record(Path(results_dir) / experiment / f"{run_name}.json", payload)  # after its weights
