"""How hard the world's task is, in seconds: a never-tuned linear classifier on the experiments' own crops.

The world must make the paper's question askable (issue "Embedded face world"): real-only training
neither trivial nor hopeless (held-out subjects 60-90 %), MMI at least 10 points lower, CK+ in
between or similar. 03_train_real measures that with the Table-1 CNN in minutes; this baseline
answers it in seconds for whoever changes the world's styles. Tune the world, never this classifier.
"""
from __future__ import annotations

from typing import Any

import cv2
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from .config import Config
from .evaluate import evaluate
from .experiments import cross_database_sets
from .preprocess import FaceSet, real_splits
from .report import markdown_table, pct

SIDE = 32  # crops shrunk to 32x32: the linear model sees the face's layout, not pixel noise
C = 0.01  # fixed once, never tuned to the world
IN_DOMAIN = (0.60, 0.90)
MMI_DROP = 0.10


def features(faces: FaceSet) -> np.ndarray:
    """Each crop shrunk to SIDE x SIDE and flattened, as float32."""
    small = [cv2.resize(img, (SIDE, SIDE), interpolation=cv2.INTER_AREA) for img in faces.images]
    return np.asarray(small, np.float32).reshape(len(faces), -1)


def calibrate(cfg: Config) -> dict[str, dict[str, Any]]:
    """Train on the RaFD + Oulu training subjects; metrics on the held-out subjects, MMI and CK+."""
    splits = real_splits(cfg)
    model = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=2000))
    model.fit(features(splits["train"]), splits["train"].labels)
    sets = {"test": splits["test"], **cross_database_sets(cfg)}
    return {name: evaluate(model.predict(features(faces)), faces.labels, faces.subjects)
            for name, faces in sets.items()}


def verdicts(accuracy: dict[str, float]) -> dict[str, str]:
    """Whether each test set meets the world's calibration target."""
    test, mmi, ckplus = accuracy["test"], accuracy["mmi"], accuracy["ckplus"]
    low, high = IN_DOMAIN
    return {"test": f"target {low:.0%}-{high:.0%}: " + ("inside" if low <= test <= high else "OUTSIDE"),
            "mmi": f"{100 * (mmi - test):+.1f} points, target <= -{100 * MMI_DROP:.0f}: "
                   + ("met" if mmi <= test - MMI_DROP else "NOT MET"),
            "ckplus": f"{100 * (ckplus - test):+.1f} points, target between MMI and in-domain or similar: "
                      + ("met" if mmi <= ckplus <= test + 0.05 else "NOT MET")}


def calibration_table(metrics: dict[str, dict[str, Any]]) -> str:
    """Markdown table: faces, accuracy with its 95 % CI and the target's verdict per test set."""
    names = {"test": "held-out RaFD + Oulu subjects", "mmi": "MMI-like", "ckplus": "CK+-like"}
    said = verdicts({name: m["accuracy"] for name, m in metrics.items()})
    return markdown_table(["test set", "faces", "accuracy [95 % CI]", "calibration target"],
                          [[names[name], str(m["n"]), pct(m["accuracy"], m["accuracy_ci95"]), said[name]]
                           for name, m in metrics.items()])
