"""Small deterministic models for engine tests, loadable as ``python:<this file>:<factory>``."""

import time

import torch
from torch import nn


class TinyCNN(nn.Module):
    def __init__(self, classes: int = 10, width: int = 4, delay: float = 0.0):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, width, 3, stride=2), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten())
        self.fc = nn.Linear(4 * width, classes)
        self.delay = delay
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        if self.delay:
            time.sleep(self.delay)
        return self.fc(self.body(x))


def tiny(seed: int = 0, classes: int = 10, width: int = 4, delay: float = 0.0, crop: int = 32):
    torch.manual_seed(seed)
    return TinyCNN(classes, width, delay), {"resize": 36, "crop": crop}
