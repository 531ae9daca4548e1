"""Plumbing shared by the GAN training loops: uint8 arrays to tensors, sample grids, checkpoints, warm starts."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch import nn

from ..runtime import atomic_path

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
    """Write a resumable training checkpoint (state dicts, optimisers, step, config) atomically."""
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any] | None:
    """Return the checkpoint at ``path``, or None if there is none yet."""
    path = Path(path)
    if not path.exists():
        return None
    return torch.load(path, map_location="cpu", weights_only=True)


def load_networks(init: StateDicts | None, **modules: nn.Module) -> None:
    """Start each named module (``G=G, D=D``) from the state dict of that name in ``init``, where it has one."""
    for name, module in modules.items():
        if init is not None and name in init:
            module.load_state_dict(init[name])
