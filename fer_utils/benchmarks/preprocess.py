"""Preprocessing speed: detect + crop every face (cold, no cache) vs loading the cache (warm).

The target is warm >= 50x cold: a rerun of any notebook must not pay for face detection again.
"""
from __future__ import annotations

import dataclasses
import tempfile
import time
from collections.abc import Sequence

from ..config import EXPERIMENT_DATABASES, Config
from ..inputs import prepare_inputs
from ..preprocess import load_database


def _timed(cfg: Config, names: Sequence[str]) -> tuple[float, int]:
    """Seconds to get the preprocessed faces of every database in ``names``, and how many."""
    t0 = time.perf_counter()
    n = sum(len(load_database(cfg, name)) for name in names)
    return time.perf_counter() - t0, n


def run(cfg: Config, names: Sequence[str] = EXPERIMENT_DATABASES) -> dict[str, float]:
    """Print images/s cold and warm on the preset's databases (the world is written if missing)."""
    prepare_inputs(cfg, names)
    with tempfile.TemporaryDirectory(prefix="fer-bench-cache-") as cache:
        fresh = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, cache=cache))
        cold_s, n = _timed(fresh, names)
        warm_s, _ = _timed(fresh, names)
    out = {"images": n, "cold_images_per_s": n / cold_s, "warm_images_per_s": n / warm_s,
           "speedup": cold_s / warm_s}
    print(f"preprocess {'+'.join(names)} ({n} faces, {cfg.preprocess.workers or 'all'} workers): "
          f"cold {out['cold_images_per_s']:.0f} images/s, warm (cache) {out['warm_images_per_s']:.0f} images/s, "
          f"ratio {out['speedup']:.0f}x (target >= 50x)")
    return out
