"""Attacks in [0, 1] pixel space: L2 and L∞ PGD stay in their balls and raise the loss; worst-of-k; a cross-check
of L∞ PGD against torchattacks' PGD where it is installed."""

from __future__ import annotations

import pytest
import torch

from shiftlab.models.attacks import pgd_l2, pgd_linf, worst_of
from shiftlab.models.nets import SmallCNN


def test_pgd_l2_stays_in_the_ball_and_in_range_and_raises_the_loss():
    torch.manual_seed(0)
    module = SmallCNN((3, 32, 32), 10, width=8).eval()

    def fwd(x):
        return module((x - 0.5) / 0.25)

    x = torch.rand(6, 3, 32, 32)
    y = torch.arange(6)
    xa = pgd_l2(fwd, x, y, eps=0.5, steps=10, step_size=0.1)
    assert ((xa - x).flatten(1).norm(dim=1) <= 0.5 + 1e-5).all()
    assert xa.min() >= 0 and xa.max() <= 1
    ce = torch.nn.functional.cross_entropy
    with torch.no_grad():
        assert ce(fwd(xa), y, reduction="none").gt(ce(fwd(x), y, reduction="none")).all()
        t = (y + 1) % 10
        xt = pgd_l2(fwd, x, t, eps=0.5, steps=10, step_size=0.1, targeted=True)
        assert ce(fwd(xt), t, reduction="none").lt(ce(fwd(x), t, reduction="none")).all()
    assert all(p.grad is None for p in module.parameters()), "the attack leaves parameter gradients alone"


def test_worst_of_picks_the_version_with_the_highest_loss():
    # a "model" whose logit for class 0 is the image mean: brighter versions are easier for label 0
    def fwd(x):
        m = x.mean((1, 2, 3))
        return torch.stack([m, torch.zeros_like(m)], 1)

    k, n = 5, 4
    versions = torch.rand(k, n, 1, 4, 4)
    y = torch.tensor([0, 0, 1, 1])
    out = worst_of(fwd, versions, y)
    means = versions.mean((2, 3, 4))
    for i in range(n):
        want = means[:, i].argmin() if y[i] == 0 else means[:, i].argmax()
        assert torch.equal(out[i], versions[want, i])


def _model():
    torch.manual_seed(0)
    module = SmallCNN((3, 32, 32), 10, width=8).eval()
    return module, (lambda x: module((x - 0.5) / 0.25))


def test_pgd_linf_stays_in_the_box_and_in_range_and_raises_the_loss():
    module, fwd = _model()
    x = torch.rand(6, 3, 32, 32)
    y = torch.arange(6)
    xa = pgd_linf(fwd, x, y, eps=8 / 255, steps=10, step_size=2 / 255)
    assert (xa - x).abs().max() <= 8 / 255 + 1e-6
    assert xa.min() >= 0 and xa.max() <= 1
    ce = torch.nn.functional.cross_entropy
    with torch.no_grad():
        assert ce(fwd(xa), y, reduction="none").gt(ce(fwd(x), y, reduction="none")).all()
    g = torch.Generator().manual_seed(3)
    xr = pgd_linf(fwd, x, y, eps=8 / 255, steps=0, step_size=2 / 255, random_start=True, generator=g)
    assert 0 < (xr - x).abs().max() <= 8 / 255 + 1e-6, "a random start moves inside the box"
    assert all(p.grad is None for p in module.parameters())


def test_pgd_linf_matches_torchattacks_pgd_without_random_start():
    torchattacks = pytest.importorskip("torchattacks")
    module, _ = _model()

    class Wrapped(torch.nn.Module):
        def forward(self, x):
            return module((x - 0.5) / 0.25)

    net = Wrapped().eval()
    x = torch.rand(4, 3, 32, 32, dtype=torch.float32)
    y = torch.arange(4)
    theirs = torchattacks.PGD(net, eps=8 / 255, alpha=2 / 255, steps=5, random_start=False)(x, y)
    ours = pgd_linf(net, x, y, eps=8 / 255, steps=5, step_size=2 / 255)
    # torchattacks averages the loss over the batch, we sum: the sign of the gradient is the same
    assert torch.allclose(ours, theirs, atol=1e-6)
