"""Fixtures for the model adapter tests: a small CNN and an independent check of the Classifier contract."""

from __future__ import annotations

import pytest
import torch
from torch import nn


class SmallCNN(nn.Module):
    """conv → relu → global pool → ``fc``; ``features`` is exported so TorchScript keeps it."""

    def __init__(self, n_classes: int = 5, width: int = 6, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.conv = nn.Conv2d(3, width, 3, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(width, n_classes)
        with torch.no_grad():  # a visible bias, so that a dropped bias cannot go unnoticed
            self.fc.bias.add_(torch.linspace(-1, 1, n_classes))

    @torch.jit.export
    def features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.pool(torch.relu(self.conv(x))), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))


def normalise(x: torch.Tensor, mean, std) -> torch.Tensor:
    """Written out here, not taken from Recipe.normalize, so the adapters are checked against it."""
    m = torch.tensor(mean, dtype=x.dtype).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=x.dtype).view(1, -1, 1, 1)
    return (x - m) / s


@pytest.fixture
def small_cnn():
    return SmallCNN


@pytest.fixture
def check_classifier():
    """check(clf, reference_module, mean, std, shape): the Classifier contract on random inputs in [0, 1].

    - logits == features @ weight.T + bias (the features are the last layer's input)
    - logits == reference_module(normalised input), with mean/std given by the test
    Returns (logits, features) for further checks.
    """

    def check(clf, reference, mean, std, shape=(4, 3, 12, 12), atol=1e-5):
        x = torch.rand(*shape, generator=torch.Generator().manual_seed(7))
        with torch.no_grad():
            logits, feats = clf.forward(x, features=True)
            w, b = clf.last_layer()
            assert feats is not None and feats.dim() == 2 and feats.shape[0] == shape[0]
            assert w.shape == (logits.shape[1], feats.shape[1]) and b.shape == (logits.shape[1],)
            torch.testing.assert_close(logits, feats @ w.T + b, atol=atol, rtol=1e-5)
            expected = reference(normalise(x, mean, std))
            torch.testing.assert_close(logits, expected, atol=atol, rtol=1e-5)
            torch.testing.assert_close(clf.logits(x), expected, atol=atol, rtol=1e-5)
            torch.testing.assert_close(clf.features(x), feats, atol=atol, rtol=1e-5)
        assert clf.num_classes == logits.shape[1]
        return logits, feats

    return check
