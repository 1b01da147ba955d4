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


def test_apgd_l2_maximize_stays_in_the_ball_and_reaches_a_linear_optimum():
    from shiftlab.models.attacks import apgd_l2_maximize

    g = torch.Generator().manual_seed(0)
    a = torch.randn(6, 3, 8, 8, generator=g)
    center = torch.full((6, 3, 8, 8), 0.5)

    def linear(x):
        return (a * x).flatten(1).sum(1)

    eps = 0.5  # no pixel can move by more than 0.5, so the box never binds: the optimum is c + ε a/‖a‖
    x, best = apgd_l2_maximize(linear, center, eps=eps, steps=50, generator=torch.Generator().manual_seed(1))
    assert ((x - center).flatten(1).norm(dim=1) <= eps + 1e-6).all() and x.min() >= 0 and x.max() <= 1
    optimum = linear(center) + eps * a.flatten(1).norm(dim=1)
    gain, best_gain = best - linear(center), optimum - linear(center)
    assert (gain >= 0.999 * best_gain).all()
    torch.testing.assert_close(best, linear(x))  # the value returned is that of the point returned
    # a fixed seed gives identical outputs; another seed another start
    x2, _ = apgd_l2_maximize(linear, center, eps=eps, steps=50, generator=torch.Generator().manual_seed(1))
    assert torch.equal(x, x2)


def test_apgd_l2_maximize_of_the_loss_matches_torchattacks_apgd():
    """With the cross-entropy as objective, the robust accuracy it leaves is within 2 points of torchattacks'
    APGD-L2 (the same algorithm, written independently)."""
    torchattacks = pytest.importorskip("torchattacks")
    from shiftlab.models.attacks import apgd_l2_maximize

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 32), torch.nn.ReLU(),
                              torch.nn.Linear(32, 5)).eval()
    x = torch.rand(300, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        y = net(x).argmax(1)  # all correct before the attack
    eps = 2.0  # leaves ≈ 27 % of the 300 points correct: something to compare
    theirs = torchattacks.APGD(net, norm="L2", eps=eps, steps=50, n_restarts=1, seed=0, loss="ce")(x, y)

    def ce(z):
        return torch.nn.functional.cross_entropy(net(z), y, reduction="none")

    ours, _ = apgd_l2_maximize(ce, x, eps=eps, steps=50, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        acc_theirs = (net(theirs).argmax(1) == y).float().mean().item()
        acc_ours = (net(ours).argmax(1) == y).float().mean().item()
    assert 0.05 < acc_theirs < 0.95, acc_theirs  # the radius leaves something to compare
    assert abs(acc_ours - acc_theirs) <= 0.02, (acc_ours, acc_theirs)


def test_attack_dispatch_random_start_and_the_autoattack_install_hint(monkeypatch):
    import sys

    from shiftlab.errors import InputError, MissingDependencyError
    from shiftlab.models.attacks import attack, default_step_size

    _, fwd = _model()
    x, y = torch.rand(5, 3, 32, 32), torch.arange(5)
    a = attack("pgd-l2", fwd, x, y, eps=0.5, steps=0, random_start=True, generator=torch.Generator().manual_seed(0))
    b = attack("pgd-l2", fwd, x, y, eps=0.5, steps=0, random_start=True, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a, b) and 0 < (a - x).flatten(1).norm(dim=1).max() <= 0.5 + 1e-6
    assert a.min() >= 0 and a.max() <= 1
    # per-sample projection: a batch gives each image what it gets alone
    one = attack("pgd-l2", fwd, x[:1], y[:1], eps=0.5, steps=4)
    assert torch.allclose(attack("pgd-l2", fwd, x, y, eps=0.5, steps=4)[:1], one, atol=1e-5)
    assert default_step_size(0.5, 20) == 2.5 * 0.5 / 20
    with pytest.raises(InputError, match="unknown attack"):
        attack("fgsm", fwd, x, y, eps=0.5, steps=1)
    monkeypatch.setitem(sys.modules, "torchattacks", None)
    with pytest.raises(MissingDependencyError, match="pip install torchattacks"):
        attack("autoattack", fwd, x, y, eps=0.5, steps=1)
