"""Metrics agree with scikit-learn, per-subject counts feed the intervals, result files work."""
from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import f1_score, precision_score, recall_score

from fer_utils.emotions import EMOTIONS
from fer_utils.evaluate import evaluate, save_run

LABELS = np.array([0, 0, 1, 1, 2, 3, 3, 4, 5, 5])
PREDS = np.array([0, 1, 1, 1, 2, 3, 0, 4, 5, 2])
SUBJECTS = np.array(["a", "a", "b", "b", "b", "c", "c", "d", "d", "d"])


def test_metrics_match_sklearn() -> None:
    """Accuracy, confusion and per-class P/R/F1 equal scikit-learn's on a hand-made case."""
    m = evaluate(PREDS, LABELS, SUBJECTS)
    assert m["accuracy"] == pytest.approx(0.7)
    assert m["confusion"][0] == [1, 1, 0, 0, 0, 0] and np.trace(m["confusion"]) == 7
    assert m["confusion_normalised"][3] == [0.5, 0, 0, 0.5, 0, 0]
    for fn, key in ((precision_score, "precision"), (recall_score, "recall"), (f1_score, "f1")):
        ref = fn(LABELS, PREDS, average=None, labels=range(6), zero_division=0)
        assert [m["per_class"][n][key] for n in EMOTIONS] == pytest.approx(ref.tolist())
    json.dumps(m)


def test_probabilities_are_argmaxed() -> None:
    """Probabilities (N, C) give the same metrics as their argmax labels."""
    probs = np.eye(6)[PREDS] * 0.9 + 0.01
    assert evaluate(probs, LABELS, SUBJECTS) == evaluate(PREDS, LABELS, SUBJECTS)


def test_counts_are_kept_per_subject() -> None:
    m = evaluate(PREDS, LABELS, SUBJECTS)
    assert m["by_subject"] == {"a": [1, 2], "b": [3, 3], "c": [1, 2], "d": [2, 3]}
    with pytest.raises(ValueError, match="subject ids"):
        evaluate(PREDS, LABELS, SUBJECTS[:-1])


def test_the_interval_widens_when_faces_cluster_by_subject() -> None:
    """100 faces from 100 people vs the same hits from 5 people who are all right or all wrong: a face-level
    bootstrap gives both the same interval; resampling subjects gives the clustered one a far wider one."""
    labels = np.zeros(100, dtype=np.int64)
    preds = np.where(np.arange(100) < 60, 0, 1)
    spread = evaluate(preds, labels, np.arange(100).astype(str))
    clustered = evaluate(preds, labels, (np.arange(100) // 20).astype(str))
    assert spread["accuracy"] == clustered["accuracy"] == 0.6
    width = {name: m["accuracy_ci95"][1] - m["accuracy_ci95"][0] for name, m in (("s", spread), ("c", clustered))}
    assert spread["accuracy_ci95"][0] <= 0.6 <= spread["accuracy_ci95"][1]
    assert width["c"] > 3 * width["s"]


def test_save_run_writes_json(tmp_path) -> None:
    """A run file holds params, seed, data hash, metrics, history, versions and the sha256 of its weights."""
    import hashlib

    weights = tmp_path / "exp1" / "cnn_seed0.safetensors"  # written first: the record pins it
    weights.parent.mkdir()
    weights.write_bytes(b"weights")
    metrics = evaluate(PREDS, LABELS, SUBJECTS)
    path = save_run(tmp_path, "exp1", "cnn_seed0", {"epochs": 2}, 0, "abc", metrics, {"loss": [1.0]})
    data = json.loads(path.read_text())
    assert path == tmp_path / "exp1" / "cnn_seed0.json"
    assert data["seed"] == 0 and data["data_hash"] == "abc" and "torch" in data["versions"]
    assert data["weights_sha256"] == hashlib.sha256(b"weights").hexdigest()


def test_one_subject_gives_no_interval_instead_of_losing_the_trained_run() -> None:
    m = evaluate(PREDS, LABELS, np.array(["only"] * len(LABELS)))
    assert m["accuracy"] == pytest.approx(0.7) and m["accuracy_ci95"] is None
