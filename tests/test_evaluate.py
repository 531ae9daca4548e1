"""Metrics agree with scikit-learn, CIs behave, paired tests and result files work."""
from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import f1_score, precision_score, recall_score

from fer_utils.emotions import EMOTIONS
from fer_utils.evaluate import bootstrap_accuracy_ci, evaluate, paired_sign_flip_test, save_run

LABELS = np.array([0, 0, 1, 1, 2, 3, 3, 4, 5, 5])
PREDS = np.array([0, 1, 1, 1, 2, 3, 0, 4, 5, 2])


def test_metrics_match_sklearn() -> None:
    """Accuracy, confusion and per-class P/R/F1 equal scikit-learn's on a hand-made case."""
    m = evaluate(PREDS, LABELS)
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
    assert evaluate(probs, LABELS) == evaluate(PREDS, LABELS)


@pytest.mark.parametrize("acc", [0.3, 0.8])
def test_bootstrap_ci_contains_estimate_and_shrinks(acc: float) -> None:
    """The CI brackets the accuracy and narrows as the test set grows."""
    widths = []
    for n in (50, 5000):
        correct = np.arange(n) < acc * n
        lo, hi = bootstrap_accuracy_ci(correct, seed=1)
        assert lo <= correct.mean() <= hi
        widths.append(hi - lo)
    assert widths[1] < widths[0] / 5


def test_paired_test_separates_shifted_samples() -> None:
    """A consistent gain over matched seeds is significant; noise is not."""
    a = np.array([0.60, 0.62, 0.58, 0.61, 0.63, 0.59, 0.60, 0.62])
    assert paired_sign_flip_test(a + 0.05, a)["p_value"] < 0.01
    noise = np.array([0.01, -0.01, 0.02, -0.02, 0.0, 0.01, -0.01, 0.0])
    assert paired_sign_flip_test(a + noise, a)["p_value"] > 0.5


def test_save_run_writes_json(tmp_path) -> None:
    """A run file holds params, seed, data hash, metrics, history, versions and the sha256 of its weights."""
    import hashlib

    weights = tmp_path / "exp1" / "cnn_seed0.safetensors"  # written first: the record pins it
    weights.parent.mkdir()
    weights.write_bytes(b"weights")
    path = save_run(tmp_path, "exp1", "cnn_seed0", {"epochs": 2}, 0, "abc", evaluate(PREDS, LABELS), {"loss": [1.0]})
    data = json.loads(path.read_text())
    assert path == tmp_path / "exp1" / "cnn_seed0.json"
    assert data["seed"] == 0 and data["data_hash"] == "abc" and "torch" in data["versions"]
    assert data["weights_sha256"] == hashlib.sha256(b"weights").hexdigest()
