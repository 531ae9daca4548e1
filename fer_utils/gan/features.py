"""How the quality measures see a face: the real data's crop, and a Table-1 CNN's hidden layer."""
from __future__ import annotations

import cv2
import numpy as np
import torch
from torch import nn

from ..preprocess import crop_face

LOW_PASS_SIGMA = 1.5  # px at 64 px: keeps a moved mouth or brow (~6-12 px across), removes a 2-4 px painted texture


def cnn_input(rgb: np.ndarray, margin: float, size: int = 64) -> np.ndarray:
    """RGB faces (N, H, W, 3) -> the CNN's gray (N, size, size), cropped as preprocessing crops real faces."""
    return np.stack([crop_face(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY), margin, size)[0] for img in rgb])


def low_pass(gray: np.ndarray, sigma: float = LOW_PASS_SIGMA) -> np.ndarray:
    """Gray faces (N, S, S) blurred by a Gaussian of ``sigma`` px: what is left of a face without its fine texture."""
    return np.stack([cv2.GaussianBlur(g, (0, 0), sigma) for g in gray])


@torch.no_grad()
def penultimate(model: nn.Module, gray: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """The Table-1 CNN's 1024-unit hidden layer (after ReLU) for gray faces (N, 64, 64) uint8."""
    model.eval()
    device = next(model.parameters()).device
    head = model.classifier[:3]  # Flatten, Linear(4608, 1024), ReLU
    out = []
    for i in range(0, len(gray), batch_size):
        x = torch.from_numpy(gray[i:i + batch_size]).to(device).unsqueeze(1).float() / 255
        out.append(head(model.features(x)).cpu())
    return torch.cat(out).numpy()
