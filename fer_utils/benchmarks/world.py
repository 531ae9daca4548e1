"""Face-world rendering speed: compiled vs eager (the baseline), batched vs one face at a time, all cores, GPU."""
from __future__ import annotations

import multiprocessing
import os
import time

import numpy as np
import torch

from ..config import Config
from ..facegen import render, render_faces, sample_identities
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


def _render_batch(sl: slice, device: str = "cpu", compiled: bool = True) -> int:
    """Render one batch of the forked inputs; returns how many faces it drew."""
    ids, aus, pose, light, size = _BATCH
    render_faces(take(ids, np.arange(len(aus))[sl]), aus[sl], pose[sl], light[sl], size, device=device,
                 compiled=compiled)
    return sl.stop - sl.start


def _faces_per_s(batches: list[slice], device: str = "cpu", compiled: bool = True) -> float:
    """Faces/s over the batches after one warm-up batch (compilation, allocations, caches)."""
    _render_batch(batches[0], device, compiled)
    if device == "cuda":
        torch.cuda.synchronize()  # render_faces copies back to the host, so each call has finished
    t0 = time.perf_counter()
    done = sum(_render_batch(sl, device, compiled) for sl in batches)
    return done / (time.perf_counter() - t0)


def run(cfg: Config, n: int = 512, batch: int = 64) -> dict[str, float]:
    """Print faces/s at the world's render size, as ratios to the eager renderer measured in this run.

    The world writer renders batches on one process per core, each running the compiled, single-
    threaded renderer, which the all-cores figure measures the same way.
    """
    global _BATCH
    size = (cfg.world.image_size, cfg.world.image_size)
    _BATCH = (*_inputs(n, cfg.world.seed), size)
    batches = [slice(i, min(i + batch, n)) for i in range(0, n, batch)]
    t0 = time.perf_counter()
    render.compile_renderer()
    out = {"compile_s": time.perf_counter() - t0,
           "eager_faces_per_s": _faces_per_s(batches[: max(2, len(batches) // 4)], compiled=False),
           "single_faces_per_s": _faces_per_s([slice(i, i + 1) for i in range(n // 8)]),
           "batched_faces_per_s": _faces_per_s(batches)}
    cores = os.cpu_count() or 1
    with multiprocessing.get_context("fork").Pool(cores, render.single_threaded) as pool:
        pool.map(_render_batch, batches[:cores])  # workers started and warm
        t3 = time.perf_counter()
        pool.map(_render_batch, batches, chunksize=1)
        out["all_cores_faces_per_s"] = n / (time.perf_counter() - t3)
    out["cores"] = cores
    out["compiled_vs_eager"] = out["batched_faces_per_s"] / out["eager_faces_per_s"]
    out["all_cores_vs_eager"] = out["all_cores_faces_per_s"] / out["eager_faces_per_s"]
    print(f"facegen {size[0]}x{size[1]}: compiled renderer ready in {out['compile_s']:.1f} s; "
          f"eager {out['eager_faces_per_s']:.0f} faces/s (baseline), compiled one at a time "
          f"{out['single_faces_per_s']:.0f}, compiled batch {out['batched_faces_per_s']:.0f} "
          f"({out['compiled_vs_eager']:.2f}x), compiled batch on {cores} cores "
          f"{out['all_cores_faces_per_s']:.0f} faces/s ({out['all_cores_vs_eager']:.2f}x)")
    if torch.cuda.is_available():
        gpu = [slice(i, min(i + 256, n)) for i in range(0, n, 256)]
        out["cuda_faces_per_s"] = _faces_per_s(gpu, "cuda")
        print(f"facegen on {torch.cuda.get_device_name()}: {out['cuda_faces_per_s']:.0f} faces/s (eager, "
              f"{out['cuda_faces_per_s'] / out['eager_faces_per_s']:.1f}x the CPU baseline)")
    return out
