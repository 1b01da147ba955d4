"""Small networks for 1- or 3-channel images; each ends in a linear classification layer ``fc``.

``TorchClassifier`` reads logits, penultimate features and the last layer's weights from ``fc``, so any of these
plugs into every analysis. The digits world's zoo is built from them (``shiftlab.world.zoo``); the robust- and
spurious-features studies train them on other data.
"""

from __future__ import annotations

import math
import typing

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


class _Block(nn.Module):
    """A residual block of ``CifarResNet``: basic (two 3×3 convs) or bottleneck (1×1, 3×3, 1×1 ×4)."""

    def __init__(self, c_in: int, planes: int, stride: int, bottleneck: bool):
        super().__init__()
        self.expansion = 4 if bottleneck else 1
        c_out = planes * self.expansion
        if bottleneck:
            self.conv1, self.bn1 = nn.Conv2d(c_in, planes, 1, bias=False), nn.BatchNorm2d(planes)
            self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
            self.bn2 = nn.BatchNorm2d(planes)
            self.conv3, self.bn3 = nn.Conv2d(planes, c_out, 1, bias=False), nn.BatchNorm2d(c_out)
        else:
            self.conv1 = nn.Conv2d(c_in, planes, 3, stride=stride, padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(planes)
            self.conv2, self.bn2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False), nn.BatchNorm2d(planes)
        # an empty Sequential is the identity; a projection where the shape changes
        self.shortcut = nn.Sequential()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out))
        self.bottleneck = bottleneck

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        if self.bottleneck:
            out = torch.relu(self.bn2(self.conv2(out)))
            out = self.bn3(self.conv3(out))
        else:
            out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """The 32 px ResNet of the CIFAR literature (3×3 stem, no max-pool, 4×4 average pool) → ``linear``.

    Its parameter names are those of MadryLab's ``robustness`` library (``conv1``, ``layerN.i.shortcut``,
    ``linear``), so that library's CIFAR checkpoints load into it (``madry:`` specs).
    """

    #: blocks per stage and whether they are bottlenecks, by the library's architecture names
    DEPTHS: typing.ClassVar[dict[str, tuple[list[int], bool]]] = {
        "resnet18": ([2, 2, 2, 2], False), "resnet34": ([3, 4, 6, 3], False),
        "resnet50": ([3, 4, 6, 3], True), "resnet101": ([3, 4, 23, 3], True), "resnet152": ([3, 8, 36, 3], True)}

    def __init__(self, arch: str, n_classes: int = 10):
        super().__init__()
        blocks, bottleneck = self.DEPTHS[arch]
        self.conv1, self.bn1 = nn.Conv2d(3, 64, 3, padding=1, bias=False), nn.BatchNorm2d(64)
        c = 64
        for i, (planes, n) in enumerate(zip((64, 128, 256, 512), blocks)):
            layer = []
            for j in range(n):
                layer.append(_Block(c, planes, stride=2 if (i and not j) else 1, bottleneck=bottleneck))
                c = planes * layer[-1].expansion
            setattr(self, f"layer{i + 1}", nn.Sequential(*layer))
        self.linear = nn.Linear(c, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, 32, 32) float → (N, n_classes) logits."""
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        return self.linear(nn.functional.avg_pool2d(out, 4).flatten(1))


def n_params(module: nn.Module) -> int:
    """Number of parameters (trainable or not)."""
    return sum(p.numel() for p in module.parameters())
