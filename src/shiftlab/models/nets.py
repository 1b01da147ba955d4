"""Small networks for 1- or 3-channel images; each ends in a linear classification layer ``fc``.

``TorchClassifier`` reads logits, penultimate features and the last layer's weights from ``fc``, so any of these
plugs into every analysis. The digits world's zoo is built from them (``shiftlab.world.zoo``); the robust- and
spurious-features studies train them on other data.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class LinearNet(nn.Module):
    """(optional average pool to ``pool_to``²) → flatten → ``fc``."""

    def __init__(self, in_shape: tuple[int, int, int], n_classes: int, pool_to: int | None = None):
        super().__init__()
        c, h, w = in_shape
        self.pool = nn.AdaptiveAvgPool2d(pool_to) if pool_to else nn.Identity()
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(c * (pool_to * pool_to if pool_to else h * w), n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) float → (N, n_classes) logits."""
        return self.fc(self.flatten(self.pool(x)))


class MLP(nn.Module):
    """flatten → ``hidden`` ReLU units → ``fc``."""

    def __init__(self, in_shape: tuple[int, int, int], n_classes: int, hidden: int):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(math.prod(in_shape), hidden), nn.ReLU())
        self.fc = nn.Linear(hidden, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) float → (N, n_classes) logits."""
        return self.fc(self.body(x))


class SmallCNN(nn.Module):
    """avg-pool 2 → conv(w) → ReLU → max-pool 2 → conv(2w) → ReLU → max-pool to 4×4 → flatten → ``fc``."""

    def __init__(self, in_shape: tuple[int, int, int], n_classes: int, width: int):
        super().__init__()
        c = in_shape[0]
        self.body = nn.Sequential(
            nn.AvgPool2d(2), nn.Conv2d(c, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(), nn.AdaptiveMaxPool2d(4), nn.Flatten())
        self.fc = nn.Linear(2 * width * 16, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) float → (N, n_classes) logits."""
        return self.fc(self.body(x))


def n_params(module: nn.Module) -> int:
    """Number of parameters (trainable or not)."""
    return sum(p.numel() for p in module.parameters())
