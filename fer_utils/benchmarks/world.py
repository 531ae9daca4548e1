"""Face-world rendering speed: one vectorised batch vs the same faces one at a time (baseline)."""
from __future__ import annotations

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


def run(cfg: Config, n: int = 256, batch: int = 64) -> dict[str, float]:
    """Print faces/s at the world's render size, batched and one at a time, and their ratio."""
    size = (cfg.world.image_size, cfg.world.image_size)
    ids, aus, pose, light = _inputs(n, cfg.world.seed)
    render_faces(take(ids, [0]), aus[:1], pose[:1], light[:1], size)  # warm-up: allocations, caches
    t0 = time.perf_counter()
    for i in range(0, n, batch):
        sl = slice(i, i + batch)
        render_faces(take(ids, np.arange(n)[sl]), aus[sl], pose[sl], light[sl], size)
    t1 = time.perf_counter()
    for i in range(n):
        render_faces(take(ids, [i]), aus[i:i + 1], pose[i:i + 1], light[i:i + 1], size)
    t2 = time.perf_counter()
    out = {"batched_faces_per_s": n / (t1 - t0), "single_faces_per_s": n / (t2 - t1)}
    out["speedup"] = out["batched_faces_per_s"] / out["single_faces_per_s"]
    print(f"facegen {size[0]}x{size[1]}: batch {out['batched_faces_per_s']:.0f} faces/s, "
          f"one at a time {out['single_faces_per_s']:.0f} faces/s, ratio {out['speedup']:.2f}x")
    return out
