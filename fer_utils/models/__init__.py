"""Model registry: the paper's CNN (Table 1) and VGG16 (Table 3), built by name."""
from __future__ import annotations

from collections.abc import Callable

from torch import nn

from .cnn import PaperCNN


def _vgg16() -> nn.Module:
    """Import torchvision lazily: only VGG16 needs it."""
    from .vgg import vgg16_gray

    return vgg16_gray()


MODELS: dict[str, Callable[[], nn.Module]] = {"cnn": PaperCNN, "vgg16": _vgg16}


def build_model(name: str) -> nn.Module:
    """Return a freshly initialised model by registry name ("cnn", "vgg16")."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(sorted(MODELS))}")
    return MODELS[name]()


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters (what Keras' model.summary() reports)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
