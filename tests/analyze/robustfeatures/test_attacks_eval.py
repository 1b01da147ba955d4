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
    x, y = as_float(px[:96]), torch.from_numpy(np.array(test.labels)[:96])
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
    many = eval_title({"attack": "pgd-l2", "eps": [0.5, 1.0], "steps": 20, "step_size": [0.0625, 0.125]}, "t")
    assert many == "pgd-l2, eps 0.5, 1, 20 steps (step 0.0625, 0.125) on t"


def test_several_radii_give_the_rows_of_single_runs_and_a_falling_curve(zoo_world):
    """A robustness curve is the single-radius evaluations side by side: each (model, radius) row equals the run
    at that radius alone (same decoded images, clean predictions and seeded attack), and robust accuracy falls
    as the radius grows for the undefended CNN."""
    ws = zoo_world.workspace
    kw = dict(steps=5, limit=48, workspace=ws, progress=False, seed=1)
    curve = robust_accuracy("world-test", ["world:cnn-medium-s0"], eps=[0.5, 1.0, 3.0], **kw)
    t = curve.table
    assert list(t["eps"]) == [0.5, 1.0, 3.0] and t["clean"].nunique() == 1
    assert curve.settings["eps"] == [0.5, 1.0, 3.0] and curve.settings["step_size"] == [2.5 * e / 5 for e in t["eps"]]
    for e in (0.5, 3.0):
        alone = robust_accuracy("world-test", ["world:cnn-medium-s0"], eps=e, **kw).table.iloc[0]
        assert t.loc[t["eps"] == e, "robust"].item() == alone["robust"]
    assert t["robust"].iloc[0] > t["robust"].iloc[2] + 0.5, t  # barely moved at 0.5, broken at 3.0
    for bad in ([], [1.0, -1.0], [float("nan")]):
        with pytest.raises(InputError, match="radii"):
            robust_accuracy("world-test", ["world:mlp"], eps=bad, **kw)


def test_the_command_takes_several_radii_and_writes_the_table_and_the_curve(zoo_world, capsys, tmp_path):
    """``robust eval --eps 1,3`` prints one row per model and radius and writes the CSV and the plot; a radius that
    is not a positive number is a one-line error (exit 2)."""
    from shiftlab.cli import main

    ws = str(zoo_world.workspace.root)
    code = main(["--quiet", "--workspace", ws, "robust", "eval", "-m", "world:cnn-medium-s0", "-d", "world-test",
                 "--eps", "1,3", "--steps", "5", "--limit", "24", "--out", str(tmp_path / "o")])
    cap = capsys.readouterr()
    assert code == 0, cap.err
    assert "eps 1, 3, 5 steps (step 0.5, 1.5)" in cap.out
    import pandas as pd

    csv = pd.read_csv(tmp_path / "o" / "robust-eval.csv")
    assert list(csv["eps"]) == [1.0, 3.0] and (csv["n_scored"] == 24).all()
    assert (tmp_path / "o" / "robust-curve.png").stat().st_size > 10_000
    for bad in ("0.5,x", "0", "-1", ","):
        code = main(["--quiet", "--workspace", ws, "robust", "eval", "-m", "world:mlp", "-d", "world-test",
                     "--eps", bad, "--limit", "4"])
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1 and "--eps takes one or more radii" in err, (bad, err)
    (tmp_path / "f").write_text("x")
    code = main(["--quiet", "--workspace", ws, "robust", "eval", "-m", "world:mlp", "-d", "world-test",
                 "--eps", "1", "--limit", "4", "--out", str(tmp_path / "f" / "o")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "is a file, not a folder" in err, err
