"""Face-world rendering speed: batches on one process and on every core vs one face at a time."""
from __future__ import annotations

import multiprocessing
import os
import time

import numpy as np

from ..config import Config
from ..facegen import render_faces, sample_identities
from ..facegen.expressions import AUS
from ..facegen.identity import take


def _inputs(n: int, seed: int) -> tuple:
    """Identities, AUs, pose and light for n faces."""
    rng = np.random.default_rng(seed)
    ids = sample_identities(seed, range(n))
    aus = rng.uniform(0, 1, (n, len(AUS))).astype(np.float32)
    pose = rng.normal(0, 0.05, (n, 3)).astype(np.float32)
    light = np.hstack([rng.normal(0, 0.3, (n, 2)), np.ones((n, 1)), np.full((n, 2), 0.5)]).astype(np.float32)
    return ids, aus, pose, light


_BATCH: tuple = ()  # (ids, aus, pose, light, size), set before the pool forks


def _render_batch(sl: slice) -> int:
    """Render one batch of the forked inputs; returns how many faces it drew."""
    ids, aus, pose, light, size = _BATCH
    render_faces(take(ids, np.arange(len(aus))[sl]), aus[sl], pose[sl], light[sl], size)
    return sl.stop - sl.start


def run(cfg: Config, n: int = 512, batch: int = 64) -> dict[str, float]:
    """Print faces/s at the world's render size: one at a time, batched, batched on every core.

    The world writer renders on one process per core (numpy holds the GIL between array
    operations, so threads do not help), which the last figure measures the same way.
    """
    global _BATCH
    size = (cfg.world.image_size, cfg.world.image_size)
    ids, aus, pose, light = _inputs(n, cfg.world.seed)
    _BATCH = (ids, aus, pose, light, size)
    batches = [slice(i, min(i + batch, n)) for i in range(0, n, batch)]
    _render_batch(slice(0, 1))  # warm-up: allocations, caches
    t0 = time.perf_counter()
    for i in range(n // 4):
        _render_batch(slice(i, i + 1))
    t1 = time.perf_counter()
    for sl in batches:
        _render_batch(sl)
    t2 = time.perf_counter()
    cores = os.cpu_count() or 1
    with multiprocessing.get_context("fork").Pool(cores) as pool:
        pool.map(_render_batch, [slice(0, 1)] * cores)  # workers started and warm
        t3 = time.perf_counter()
        pool.map(_render_batch, batches, chunksize=1)
        t4 = time.perf_counter()
    out = {"single_faces_per_s": n // 4 / (t1 - t0), "batched_faces_per_s": n / (t2 - t1),
           "all_cores_faces_per_s": n / (t4 - t3), "cores": cores}
    out["speedup"] = out["all_cores_faces_per_s"] / out["single_faces_per_s"]
    print(f"facegen {size[0]}x{size[1]}: one at a time {out['single_faces_per_s']:.0f} faces/s, "
          f"batch {out['batched_faces_per_s']:.0f} faces/s, batch on {cores} cores "
          f"{out['all_cores_faces_per_s']:.0f} faces/s (ratio to one at a time {out['speedup']:.2f}x)")
    return out
