"""Metrics of the paper's figures (accuracy, confusion, P/R/F1), per-subject counts for the intervals, result files."""
from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

from .emotions import EMOTIONS
from .identity import write_record
from .runtime import versions
from .uncertainty import accuracy as accuracy_interval
from .uncertainty import subject_counts


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


def evaluate(probs_or_preds: np.ndarray, labels: np.ndarray, subjects: np.ndarray,
             names: tuple[str, ...] = EMOTIONS) -> dict[str, Any]:
    """All metrics of one model on one test set, as a JSON-ready dict.

    ``subjects`` (one id per face) are the clusters the faces come in (a person's expressions, a clip's
    frames): ``by_subject`` keeps correct/total per subject, from which every interval is drawn
    (``fer_utils.uncertainty``); ``accuracy_ci95`` is this one model's, over test subjects only.
    """
    preds, labels, subjects = to_predictions(probs_or_preds), np.asarray(labels, dtype=np.int64), np.asarray(subjects)
    if preds.shape != labels.shape or subjects.shape != labels.shape:
        raise ValueError(f"{preds.shape[0]} predictions and {subjects.shape[0]} subject ids for "
                         f"{labels.shape[0]} labels")
    counts, normalised = confusion(preds, labels, len(names))
    classes = per_class(preds, labels, names)
    by_subject = subject_counts(preds == labels, subjects)
    interval = None  # one subject: no spread to resample (split.*_subjects may be 1); tables print it without
    if len(by_subject) > 1:
        estimate = accuracy_interval([by_subject])
        interval = [estimate.low, estimate.high]
    return {
        "n": int(labels.size),
        "accuracy": float(accuracy_score(labels, preds)),
        "accuracy_ci95": interval,
        "by_subject": by_subject,
        "macro_f1": float(np.mean([c["f1"] for c in classes.values()])),
        "per_class": classes,
        "confusion": counts.tolist(),
        "confusion_normalised": normalised.round(6).tolist(),
        "classes": list(names),
    }


def save_run(results_dir: str | os.PathLike, experiment: str, run_name: str, params: dict[str, Any], seed: int,
             data_hash: str, metrics: dict[str, Any], history: dict[str, list[float]] | None = None,
             fit: dict[str, Any] | None = None, data: dict[str, Any] | None = None,
             ident: Mapping[str, Any] | None = None) -> Path:
    """Write ``results/<experiment>/<run>.json`` atomically with params, seed, data hash, versions.

    ``fit`` holds how training went (best and stopped epoch, seconds, images/s); ``data`` where each
    database's faces came from (embedded world or your files, path, file count, content hash); ``ident`` its
    identity (``experiments.run_identity``), without which it is never reused.
    """
    payload = {"experiment": experiment, "run": run_name, "seed": seed, "data_hash": data_hash,
               "params": params, "data": data or {}, "metrics": metrics, "history": history or {},
               "fit": fit or {}, "versions": versions()}
    return write_record(Path(results_dir) / experiment / f"{run_name}.json", payload, ident or {})  # after its weights
