"""Plumbing shared by the GAN training loops: uint8 arrays to tensors, sample grids, checkpoints, warm starts.

A run resumes from its ``checkpoint.pt`` only if the checkpoint was trained on the same data (sha256 of the
arrays) with the same result-changing settings and training code (its identity, ``fer_utils.identity``);
otherwise, or when it cannot be read, the checkpoint is set aside (renamed, never deleted) with a log line
and training starts afresh (``docs/generators.md``).
"""
from __future__ import annotations

import dataclasses
import hashlib
import itertools
import math
import os
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch import nn

from ..config import WeightsError
from ..engine import TrainingFailed
from ..identity import identity, mismatch
from ..runtime import atomic_path
from .weights import one_line, reading

StateDicts = dict[str, dict[str, torch.Tensor]]  # network name (G, D, G_ema) -> its state dict


def images_to_tensor(images: np.ndarray, image_size: int) -> torch.Tensor:
    """Turn uint8 images (N, H, W[, 3]) into float (N, 3, H, W) in [-1, 1]; gray is repeated to RGB."""
    if images.dtype != np.uint8:
        raise ValueError(f"expected uint8 images, got {images.dtype}")
    if images.ndim == 3:
        images = np.repeat(images[..., None], 3, axis=3)
    if images.ndim != 4 or images.shape[1:] != (image_size, image_size, 3):
        raise ValueError(f"expected images of shape (N, {image_size}, {image_size}[, 3]), got {images.shape}")
    if len(images) == 0:
        raise ValueError("no training images")
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float()  # (N, 3, H, W)
    return x / 127.5 - 1


def save_grid(images: torch.Tensor, path: str | os.PathLike, nrow: int) -> Path:
    """Write images (N, 3, H, W) in [-1, 1] as one PNG grid with ``nrow`` images per row, atomically."""
    n, _, h, w = images.shape
    ncol = -(-n // nrow)
    grid = torch.full((3, ncol * h, nrow * w), -1.0)
    for i, img in enumerate(images.detach().float().cpu()):
        r, c = divmod(i, nrow)
        grid[:, r * h:(r + 1) * h, c * w:(c + 1) * w] = img
    rgb = ((grid.clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()
    ok, png = cv2.imencode(".png", np.ascontiguousarray(rgb[..., ::-1]))  # OpenCV writes BGR
    if not ok:
        raise RuntimeError(f"could not encode the sample grid for {path}")
    with atomic_path(path) as tmp:
        tmp.write_bytes(png.tobytes())
    return Path(path)


def save_checkpoint(path: str | os.PathLike, payload: dict[str, Any]) -> Path:
    """Write a resumable training checkpoint (state dicts, optimisers, step, config, identity) atomically."""
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def stop_if_diverged(trainer: str, step: int, losses: dict[str, float], hint: str, *networks: nn.Module) -> None:
    """Raise ``TrainingFailed`` (one line) when a loss, or a weight of ``networks``, is not finite.

    Called on every iteration's losses and on the networks before each checkpoint, so training stops
    before NaN weights overwrite the last good checkpoint or are exported.
    """
    bad = next((f"{name} is {value}" for name, value in losses.items() if not math.isfinite(value)), None)
    if bad is None:
        bad = next((f"{type(net).__name__} weight {name} is not finite" for net in networks
                    for name, p in net.named_parameters() if not torch.isfinite(p).all()), None)
    if bad is not None:
        raise TrainingFailed(f"{trainer}: {bad} at iteration {step}; stopped before saving it (checkpoint.pt keeps "
                             f"the last finite iteration); {hint}")


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any] | None:
    """The checkpoint at ``path`` (read without running pickled code), None if there is none yet, or a
    WeightsError naming it if it cannot be read."""
    path = Path(path)
    if not path.exists():
        return None
    with reading(path, "training checkpoint", "point at a checkpoint.pt written by train-gan"):
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(ckpt, dict):
        raise WeightsError(f"{path}: holds a {type(ckpt).__name__}, not a training checkpoint written by train-gan")
    return ckpt


def data_fingerprint(*arrays: np.ndarray) -> str:
    """sha256 of the training arrays (dtype, shape, bytes): a checkpoint goes on only with the data it learnt from."""
    digest = hashlib.sha256()
    for array in arrays:
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype.str}{array.shape};".encode())
        digest.update(array.data)
    return digest.hexdigest()


def result_settings(cfg: Any) -> dict[str, Any]:
    """The settings of a trainer config that change what it learns: all but its ``SCHEDULE`` (length, save steps)."""
    return {k: v for k, v in dataclasses.asdict(cfg).items() if k not in type(cfg).SCHEDULE}


def training_identity(cfg: Any, data: str) -> dict[str, Any]:
    """What a checkpoint records so that only a run on the same data, settings and code resumes it
    (``fer_utils.identity``): the data fingerprint, the result-changing settings, the GAN training code."""
    return identity("gan-training", {"faces": data}, result_settings(cfg))


def resumable_checkpoint(path: Path, cfg: Any, data: str) -> dict[str, Any] | None:
    """The checkpoint at ``path`` if this run (``cfg``, data fingerprint ``data``) may go on from it, else None.

    One that cannot be read, or whose identity is not this run's (other data, result-changing settings or
    training code, or written before checkpoints recorded one), is set aside with a log line naming what
    changed, so the run starts afresh.
    """
    try:
        ckpt = load_checkpoint(path)
    except WeightsError as exc:
        set_aside(path, "corrupt", f"cannot be read ({one_line(exc.__cause__ or exc)})")
        return None
    reason = None if ckpt is None else mismatch(ckpt.get("identity"), training_identity(cfg, data))
    if reason:
        set_aside(path, "stale", reason)
        return None
    return ckpt


def set_aside(path: Path, tag: str, reason: str) -> Path:
    """Rename ``path`` to the first free ``<name>.<tag>[.N]`` beside it and say why: a rerun must neither fail on
    it again nor silently lose it."""
    names = itertools.chain([f"{path.name}.{tag}"], (f"{path.name}.{tag}.{n}" for n in itertools.count(1)))
    target = next(path.with_name(name) for name in names if not path.with_name(name).exists())
    os.replace(path, target)
    print(f"{path}: not resumed: {reason}; set aside as {target.name} (delete it when no longer needed); "
          "training starts without it")
    return target


def load_networks(init: StateDicts | None, **modules: nn.Module) -> None:
    """Start each named module (``G=G, D=D``) from the state dict of that name in ``init``, where it has one."""
    for name, module in modules.items():
        if init is not None and name in init:
            module.load_state_dict(init[name])
