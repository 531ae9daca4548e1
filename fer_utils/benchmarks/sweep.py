"""Sweep throughput: S seeds trained one after another vs together in one batched pass."""
from __future__ import annotations

import time

import numpy as np
import torch

from ..config import Config, TrainConfig
from ..runtime import resolve_device, resolve_precision
from ..train import ArraySplit, fit


def _img_per_s(train: ArraySplit, val: ArraySplit, cfg: TrainConfig, device: torch.device,
               groups: list[tuple[int, ...]]) -> float:
    """Training images/s (all members counted) of one ``fit`` call per seed group."""
    t0 = time.perf_counter()
    for seeds in groups:
        fit("cnn", train, val, cfg, device, seeds, progress=False)
    return len(train.labels) * sum(map(len, groups)) * cfg.epochs / (time.perf_counter() - t0)


def run(cfg: Config, n: int | None = None, seeds: int = 5, batch: int = 64) -> dict[str, float]:
    """Print img/s of ``seeds`` sequential runs and of the same seeds batched, and their ratio."""
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
    return {"sequential_img_per_s": sequential, "batched_img_per_s": batched, "ratio": batched / sequential}
