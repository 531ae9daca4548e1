"""The calibration baseline scores each test set and says whether the world meets its targets."""
import numpy as np
import pytest

from fer_utils import calibrate
from fer_utils.config import load_config
from fer_utils.emotions import EMOTIONS
from fer_utils.preprocess import FaceSet


def _faces(n: int, seed: int, signal: float) -> FaceSet:
    """Noise crops with a bright patch where the label says (one place per class), of the given contrast."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % len(EMOTIONS)
    images = rng.normal(128, 40, (n, 64, 64))
    for i, label in enumerate(labels):
        images[i, :16, 10 * label:10 * label + 10] += 80 * signal
    images = images.clip(0, 255).astype(np.uint8)
    return FaceSet(images, labels.astype(np.int64), np.array([f"db:{i % 5}" for i in range(n)]),
                   np.array(["db"] * n), np.ones(n, bool), [{} for _ in range(n)])


@pytest.fixture
def cfg(monkeypatch: pytest.MonkeyPatch):
    splits = {"train": _faces(240, 0, 1.0), "val": _faces(12, 1, 1.0), "test": _faces(120, 2, 1.0)}
    monkeypatch.setattr(calibrate, "real_splits", lambda cfg: splits)
    monkeypatch.setattr(calibrate, "cross_database_sets",
                        lambda cfg: {"mmi": _faces(120, 3, 0.0), "ckplus": _faces(60, 4, 1.0)})
    return load_config("quick")


def test_calibration_scores_held_out_and_cross_database_faces(cfg):
    metrics = calibrate.calibrate(cfg)
    assert list(metrics) == ["test", "mmi", "ckplus"] and metrics["mmi"]["n"] == 120
    assert metrics["test"]["accuracy"] > 0.9 and metrics["ckplus"]["accuracy"] > 0.9  # the label patch is learnt
    assert metrics["mmi"]["accuracy"] < 0.4  # no signal: about chance (1/6)
    table = calibrate.calibration_table(metrics)
    assert "OUTSIDE" in table  # too easy in-domain: above the 90 % ceiling
    assert "MMI-like | 120 |" in table


@pytest.mark.parametrize("accuracy, expected", [
    ({"test": 0.85, "mmi": 0.60, "ckplus": 0.75}, ("inside", "met", "met")),
    ({"test": 0.95, "mmi": 0.90, "ckplus": 0.50}, ("OUTSIDE", "NOT MET", "NOT MET")),
    ({"test": 0.70, "mmi": 0.55, "ckplus": 0.74}, ("inside", "met", "met")),  # CK+ similar to in-domain
])
def test_verdicts_follow_the_targets(accuracy, expected):
    said = calibrate.verdicts(accuracy)
    assert tuple(said[k].rsplit(": ", 1)[1] for k in ("test", "mmi", "ckplus")) == expected
