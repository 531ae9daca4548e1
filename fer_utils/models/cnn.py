"""The paper's FER CNN (Table 1), as in the authors' Keras code: 'valid' convolutions.

With 'valid' padding the trainable parameter count is 4,966,022, the number Keras reports
for the authors' model; 'same' padding would give 8.6 M (flatten 8192 instead of 4608).
"""
from __future__ import annotations

import torch
from torch import nn

from ..emotions import EMOTIONS


class PaperCNN(nn.Module):
    """Four 3x3 convs, three max-pools, one 1024-unit dense layer; logits for 6 classes."""

    def __init__(self, n_classes: int = len(EMOTIONS)) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 32, 3), nn.ReLU(),     # (B, 32, 62, 62)
            nn.Conv2d(32, 64, 3), nn.ReLU(),    # (B, 64, 60, 60)
            nn.MaxPool2d(2),                    # (B, 64, 30, 30)
            nn.Dropout(0.25),
            nn.Conv2d(64, 128, 3), nn.ReLU(),   # (B, 128, 28, 28)
            nn.MaxPool2d(2),                    # (B, 128, 14, 14)
            nn.Conv2d(128, 128, 3), nn.ReLU(),  # (B, 128, 12, 12)
            nn.MaxPool2d(2),                    # (B, 128, 6, 6)
            nn.Dropout(0.25),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),                       # (B, 4608)
            nn.Linear(128 * 6 * 6, 1024), nn.ReLU(),
            nn.Dropout(0.5),
            nn.Linear(1024, n_classes),         # (B, 6) logits; softmax lives in the loss
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map gray faces (B, 1, 64, 64) in [0, 1] to class logits (B, 6)."""
        return self.classifier(self.features(x))
