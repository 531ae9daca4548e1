"""Sweep throughput: S seeds trained one after another vs together in one batched pass; then where runs train.

The executors' part trains the same short runs (Table-1 CNN, synthetic faces, nothing read or written)
in a row here (``serial``), on worker processes (``local``) and on a Dask LocalCluster (``dask``, when
the extra is installed), and reports runs per hour as ratios to serial, worker start-up included.
"""
from __future__ import annotations

import functools
import time

import numpy as np
import torch

from .. import executors
from ..config import Config, TrainConfig
from ..engine import ArraySplit, fit
from ..runtime import resolve_device, resolve_precision


def _img_per_s(train: ArraySplit, val: ArraySplit, cfg: TrainConfig, device: torch.device,
               groups: list[tuple[int, ...]]) -> float:
    """Training images/s (all members counted) of one ``fit`` call per seed group."""
    t0 = time.perf_counter()
    for seeds in groups:
        fit("cnn", train, val, cfg, device, seeds, progress=False)
    return len(train.labels) * sum(map(len, groups)) * cfg.epochs / (time.perf_counter() - t0)


def _faces(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 64, 64), dtype=np.uint8), rng.integers(0, 6, n)


def bench_task(cfg: Config, experiment: str, ratio: int, seed: int, threads: int = 0, n: int = 256) -> float:
    """One short stand-in run (the executors' task signature): 1 epoch of the CNN on ``n`` synthetic faces, CPU."""
    if threads:
        torch.set_num_threads(threads)
    images, labels = _faces(n, seed)
    recipe = TrainConfig(epochs=1, batch_size=64, precision=cfg.train.precision)
    t0 = time.perf_counter()
    fit("cnn", ArraySplit(images, labels), ArraySplit(images[:64], labels[:64]), recipe, "cpu", (seed,),
        progress=False)
    return time.perf_counter() - t0


def run_executors(cfg: Config, runs: int = 8, workers: int = 2,
                  names: tuple[str, ...] = ("local", "dask"), faces: int = 256) -> dict[str, float]:
    """Runs per hour of ``runs`` stand-in runs on serial, local and (if installed) Dask; ratios to serial."""
    todo = [("real", 0, seed) for seed in range(runs)]
    task = functools.partial(bench_task, n=faces)
    print(f"executors: {runs} runs (1 epoch, {faces} faces, CNN) on {executors.cores()} cores, {workers} workers, "
          "start-up included")
    t0 = time.perf_counter()
    for _, _, seed in todo:
        task(cfg, "real", 0, seed)
    rates = {"serial": runs * 3600 / (time.perf_counter() - t0)}
    print(f"serial           : {rates['serial']:8.0f} runs/h")
    for name in names:
        t0 = time.perf_counter()  # starting the workers counts
        try:
            backend = executors.make_backend(cfg, name, workers)
        except executors.ExecutorError as exc:
            print(f"{name:<17}: skipped ({exc})")
            continue
        try:
            failures = executors.dispatch(cfg, todo, backend, task=task, progress=False)
        finally:
            backend.close()
        if failures:
            print(f"{name:<17}: {len(failures)} runs failed: {failures[0]}")
            continue
        rates[name] = runs * 3600 / (time.perf_counter() - t0)
        print(f"{name} ({workers} workers): {rates[name]:8.0f} runs/h  ({rates[name] / rates['serial']:.2f}x)")
    return {f"{name}_runs_per_h": rate for name, rate in rates.items()}


def run(cfg: Config, n: int | None = None, seeds: int = 5, batch: int = 64,
        executor_runs: int | None = None) -> dict[str, float]:
    """Print img/s of ``seeds`` sequential runs and of the same seeds batched, and their ratio; then the executors.

    ``executor_runs``: runs for the executors' comparison (``run_executors``); default 8 on the full
    benchmark (``n`` not given), none when ``n`` is given.
    """
    device = resolve_device(cfg.device)
    n = n or (16384 if device.type == "cuda" else 512)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, 64, 64), dtype=np.uint8)
    labels = rng.integers(0, 6, n)
    train, val = ArraySplit(images, labels), ArraySplit(images[:batch], labels[:batch])
    recipe = TrainConfig(epochs=1, batch_size=batch, precision=cfg.train.precision)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
    print(f"device: {name}; {n} faces 64x64, batch {batch}, Table-1 CNN, {seeds} seeds, 1 epoch each, "
          f"{resolve_precision(recipe.precision, device)}")
    # warm-up
    fit("cnn", ArraySplit(images[:batch], labels[:batch]), val, recipe, device, tuple(range(seeds)), progress=False)
    sequential = _img_per_s(train, val, recipe, device, [(s,) for s in range(seeds)])
    print(f"sequential ({seeds} runs) : {sequential:8.1f} img/s")
    batched = _img_per_s(train, val, recipe, device, [tuple(range(seeds))])
    print(f"batched (1 pass)    : {batched:8.1f} img/s  ({batched / sequential:.2f}x)")
    out = {"sequential_img_per_s": sequential, "batched_img_per_s": batched, "ratio": batched / sequential}
    executor_runs = (8 if n is None else 0) if executor_runs is None else executor_runs
    if executor_runs:
        out |= run_executors(cfg, executor_runs)
    return out
