"""Shared fixtures: tiny images written in tmp_path, so no test needs a real database."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest


def _write_image(path: Path, shape: tuple[int, int] = (40, 32), seed: int = 0) -> Path:
    """Write a small gray gradient-plus-noise image (format from the suffix); return the path."""
    rng = np.random.default_rng(seed)
    h, w = shape
    img = (np.add.outer(np.arange(h) * 3, np.arange(w) * 2) + rng.integers(0, 40, shape)).clip(0, 255)
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), img.astype(np.uint8))
    return path


@pytest.fixture
def write_image() -> Callable[..., Path]:
    """``write_image(path, shape=(40, 32), seed=0)`` writes a tiny valid image file."""
    return _write_image
