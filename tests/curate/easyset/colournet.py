"""A model for the post-edit check, loadable as ``python:<this file>:colournet``: it calls an image class 0, 1 or 2
by its dominant colour channel (red, green, blue), so that a test knows what it will say about any file."""

import torch
from torch import nn


class ColourNet(nn.Module):
    def __init__(self, classes: int = 1000):
        super().__init__()
        self.body = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(3, classes)
        with torch.no_grad():
            self.fc.weight.zero_()
            self.fc.weight[:3, :3] = 20 * torch.eye(3)
            self.fc.bias.fill_(-100.0)
            self.fc.bias[:3] = 0.0

    def forward(self, x):
        return self.fc(self.body(x))


def colournet():
    return ColourNet(), {"resize": 32, "crop": 32, "mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0]}
