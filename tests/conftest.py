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


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory) -> tuple[Path, Path]:
    """Random-init generators (16 px) saved as our fp16 safetensors: small enough to make a unit in a second."""
    import torch

    from fer_utils.gan import stargan, stylegan2
    from fer_utils.gan.data import STARGAN_DOMAINS
    from fer_utils.gan.weights import save_weights

    folder = tmp_path_factory.mktemp("weights")
    torch.manual_seed(0)
    sg = stylegan2.Generator(z_dim=8, w_dim=8, img_resolution=16, mapping_kwargs=dict(num_layers=1),
                             synthesis_kwargs=dict(channel_base=64, channel_max=8))
    st = stargan.Generator(conv_dim=4, c_dim=7, repeat_num=1)
    save_weights(sg, folder / "sg.safetensors", sg.config(), fp16=True)
    save_weights(st, folder / "st.safetensors", dict(conv_dim=4, c_dim=7, repeat_num=1),
                 {"domains": list(STARGAN_DOMAINS), "config": {"image_size": 16}}, fp16=True)
    return folder / "sg.safetensors", folder / "st.safetensors"


@pytest.fixture
def interrupt_training(monkeypatch) -> Callable[[object, int], None]:
    """``interrupt_training(module, step)``: the module's ``train_step`` raises KeyboardInterrupt at ``step``."""
    def patch(module: object, step: int) -> None:
        original = module.train_step

        def crash(*args):
            if args[-1] == step:
                raise KeyboardInterrupt
            return original(*args)

        monkeypatch.setattr(module, "train_step", crash)
    return patch
