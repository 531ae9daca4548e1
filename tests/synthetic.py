"""Stand-ins shared by the tests that train real runs: learnable fake faces and a CNN that trains in a blink.

A plain module (not a fixture) so that worker processes the tests start (spawned executors, the
fault-injection driver) can import it too.
"""
from __future__ import annotations

import numpy as np
from torch import nn

from fer_utils.emotions import EMOTIONS
from fer_utils.preprocess import FaceSet


def tiny_cnn() -> nn.Module:
    """Stands in for the Table-1 CNN so a test trains in a fraction of a second."""
    return nn.Sequential(nn.Conv2d(1, 4, 3, stride=4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 16 * 16, 6))


def synthetic_faces(n: int, seed: int, database: str = "rafd", prefix: str = "s") -> FaceSet:
    """Faces whose corner brightness encodes the label (learnable), every class present, 4 subjects."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % len(EMOTIONS)
    images = rng.integers(0, 256, (n, 64, 64), dtype=np.uint8)
    images[:, :8, :8] = (labels * 40)[:, None, None]
    subjects = np.array([f"{database}:{prefix}{i % 4}" for i in range(n)])
    rows = [{"path": f"{i}.png", "split": ""} for i in range(n)]
    return FaceSet(images, labels.astype(np.int64), subjects, np.array([database] * n), np.ones(n, bool), rows)


def sleeping_task(cfg, experiment: str, ratio: int, seed: int, threads: int) -> None:
    """A sweep task that writes its pid into ``results_dir`` and sleeps: a run still training when the sweep is
    stopped (tests/test_signals.py)."""
    import os
    import time
    from pathlib import Path

    (Path(cfg.results_dir) / f"worker-{os.getpid()}.pid").write_text(str(os.getpid()))
    time.sleep(300)
