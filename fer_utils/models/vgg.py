"""torchvision's VGG16 for 1-channel 64x64 faces and 6 classes (paper §4.4, Table 3)."""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..emotions import EMOTIONS
from ._torchvision import torchvision


def vgg16_gray(n_classes: int = len(EMOTIONS), imagenet_weights: str | Path | None = None) -> nn.Module:
    """Build VGG16 with a 1-channel first conv; random init unless an ImageNet file is given.

    Args:
        n_classes: outputs of the last linear layer.
        imagenet_weights: optional user-supplied torchvision ``vgg16`` state dict (.pth); the
            first conv's RGB kernels are averaged into one gray channel, the 1000-way head is
            dropped. Nothing is downloaded.
    """
    model = torchvision.models.vgg16(weights=None, num_classes=n_classes)
    model.features[0] = nn.Conv2d(1, 64, kernel_size=3, padding=1)  # (B, 1, 64, 64) -> (B, 64, 64, 64)
    if imagenet_weights is not None:
        _load_imagenet(model, Path(imagenet_weights))
    return model  # adaptive avg-pool maps the (B, 512, 2, 2) map to 7x7 for the classifier


def _load_imagenet(model: nn.Module, path: Path) -> None:
    """Copy ImageNet VGG16 weights into ``model``, graying conv1 and skipping the 1000-way head."""
    if not path.is_file():
        raise FileNotFoundError(f"ImageNet VGG16 weights not found: {path}")
    state = torch.load(path, map_location="cpu", weights_only=True)
    state["features.0.weight"] = state["features.0.weight"].mean(dim=1, keepdim=True)  # RGB -> gray
    state = {k: v for k, v in state.items() if not k.startswith("classifier.6.")}
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or set(missing) != {"classifier.6.weight", "classifier.6.bias"}:
        raise RuntimeError(f"{path}: not a torchvision VGG16 state dict (missing {missing}, unexpected {unexpected})")
