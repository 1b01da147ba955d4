"""Attacks at the world's scale on an undefended zoo CNN: they break it, stay in their balls and in [0, 1], are
reproducible, agree with torchattacks' PGD-L2, and ``robust_accuracy`` reports them through the engine."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from shiftlab.analyze.robustfeatures.evaluate import robust_accuracy
from shiftlab.errors import InputError
from shiftlab.models.attacks import attack, pgd_l2


def as_float(px) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(px)).float().div_(255)


def test_untargeted_l2_pgd_breaks_the_undefended_cnn_inside_its_ball(world_pixels):
    clf, _, _, test, px = world_pixels
    x, y = as_float(px[:96]), torch.from_numpy(np.asarray(test.labels)[:96])
    xa = attack("pgd-l2", clf.logits, x, y, eps=3.0, steps=20)
    assert ((xa - x).flatten(1).norm(dim=1) <= 3.0 + 1e-6).all() and xa.min() >= 0 and xa.max() <= 1
    with torch.no_grad():
        success = (clf.logits(xa).argmax(1) != y).float().mean().item()
    assert success >= 0.95, success


def test_random_start_is_in_the_ball_and_a_fixed_seed_repeats_it(world_pixels):
    clf, _, _, test, px = world_pixels
    x, y = as_float(px[:32]), torch.from_numpy(np.asarray(test.labels)[:32])
    runs = [attack(name, clf.logits, x, y, eps=eps, steps=3, random_start=True,
                   generator=torch.Generator().manual_seed(seed))
            for name, eps in (("pgd-l2", 1.0), ("pgd-linf", 8 / 255)) for seed in (5, 5, 6)]
    for name, eps, (a, b, c) in (("l2", 1.0, runs[:3]), ("linf", 8 / 255, runs[3:])):
        assert torch.equal(a, b) and not torch.equal(a, c), name
        d = (a - x).flatten(1)
        size = d.norm(dim=1) if name == "l2" else d.abs().amax(dim=1)
        assert (size <= eps + 1e-6).all() and a.min() >= 0 and a.max() <= 1
    t = (y + 1) % 10  # targeted runs move towards the target
    xt = pgd_l2(clf.logits, x, t, eps=4.0, steps=20, step_size=0.8, targeted=True)
    ce = torch.nn.functional.cross_entropy
    with torch.no_grad():
        assert ce(clf.logits(xt), t) < ce(clf.logits(x), t)


def test_l2_pgd_agrees_with_torchattacks_within_two_points(world_pixels):
    torchattacks = pytest.importorskip("torchattacks")
    clf, _, _, test, px = world_pixels
    x, y = as_float(px[:200]), torch.from_numpy(np.asarray(test.labels)[:200])

    class Net(torch.nn.Module):
        def forward(self, z):
            return clf.logits(z)

    eps, steps = 2.0, 10  # the world's robust-accuracy radius: leaves something to compare
    theirs = torchattacks.PGDL2(Net().eval(), eps=eps, alpha=2.5 * eps / steps, steps=steps, random_start=False)(x, y)
    ours = pgd_l2(clf.logits, x, y, eps=eps, steps=steps, step_size=2.5 * eps / steps)
    with torch.no_grad():
        acc = [(clf.logits(a).argmax(1) == y).float().mean().item() for a in (ours, theirs)]
    assert 0.05 < acc[1] < 0.95, acc
    assert abs(acc[0] - acc[1]) <= 0.02, acc


def test_robust_accuracy_reports_clean_and_robust_with_intervals(zoo_world):
    ws = zoo_world.workspace
    kw = dict(eps=2.0, steps=5, limit=48, workspace=ws, progress=False, random_start=True, seed=3)
    a = robust_accuracy("world-test", ["world:cnn-medium-s0", "world:mlp"], **kw)
    b = robust_accuracy("world-test", ["world:cnn-medium-s0"], **kw)
    t = a.table
    assert list(t["model"]) == ["cnn-medium-s0", "mlp"] and (t["n_scored"] == 48).all()
    assert (t["robust"] <= t["clean"]).all() and (t["clean"] > 0.8).all()
    assert (t["robust_low"] <= t["robust"]).all() and (t["robust"] <= t["robust_high"]).all()
    assert t["robust"][0] == b.table["robust"][0], "a fixed seed gives the same robust accuracy"
    with pytest.raises(InputError, match="unknown attack"):
        robust_accuracy("world-test", ["world:mlp"], attack_name="fgsm", workspace=ws, progress=False, limit=4)


def test_the_eval_title_gives_autoattack_no_step_count():
    """AutoAttack runs its own attacks and schedules: its title names them and the radius, never our --steps."""
    from shiftlab.cli.robust import eval_title

    aa = eval_title({"attack": "autoattack", "eps": 2.0, "steps": None, "step_size": None}, "world-test")
    assert "steps" not in aa and "eps 2" in aa and "APGD" in aa and aa.endswith("world-test")
    pgd = eval_title({"attack": "pgd-l2", "eps": 0.5, "steps": 20, "step_size": 0.0625}, "world-test")
    assert pgd == "pgd-l2, eps 0.5, 20 steps (step 0.0625) on world-test"
