"""The demo's robust-features section on the demo's world (full zoo): the published qualitative pattern of the S4
protocol is reproduced, and a rerun reads everything from the workspace."""

from __future__ import annotations

import pytest

from shiftlab.world import robust_section as rs


@pytest.fixture(scope="module")
def section(demo):
    from shiftlab.world import build_world

    ws, _ = demo
    world = build_world(ws, progress=False)
    models = ["world:cnn-medium-s0", "world:cnn-adv-l2", "world:mlp"]
    return world, models, rs.robust_section(world, models, progress=False)


def test_the_protocol_reproduces_the_published_pattern(section):
    world, _, (sec, mnist) = section
    table, settings = rs.protocol(world)
    by = table.set_index("set")
    chance = settings["chance"]
    assert by.loc["D_R", "robust"] > by.loc["D_NR", "robust"]  # robust features alone give robustness
    assert by.loc["D_NR", "clean"] > chance + 0.3 and by.loc["D_rand", "clean"] > chance + 0.3
    assert by.loc["D_det", "clean"] > chance
    assert by.loc["D_R", "feature_distance_ratio"] <= 0.1 and by.loc["D_NR", "feature_distance_ratio"] <= 0.1
    assert by.loc["D_det", "targeted_success"] >= 0.9 and by.loc["D_rand", "targeted_success"] >= 0.9
    assert sec.title == "What do robust and non-robust features teach?"
    cached = rs.read_result(world.workspace.root / "robustfeatures" / "mnist") is not None
    # the robustness curve and the examples, and the MNIST grid when the study ran here (the demo adds this section
    # only)
    assert len([b for b in sec.blocks if type(b).__name__ == "FigureBlock"]) == 2 + cached
    if not cached:
        for part in (sec, mnist):
            assert any(rs.MNIST_COMMAND in str(getattr(b, "text", "")) for b in part.blocks)


def test_the_curve_shows_why_the_world_scales_its_radii(section):
    """At CIFAR's ε 0.5 the world's standard CNN keeps most of its accuracy; by ε 3 it is broken (≥ 95 % of its right
    answers flipped) while the adversarially trained CNN keeps a clear share: the reason the world's radii are
    scaled, drawn in the section."""
    world, _, _ = section
    curve = rs._attacks_table(world, [rs.STANDARD, rs.ROBUST], rs.CURVE_EPS, progress=False)
    by = curve.set_index(["model", "eps"])["robust"]
    clean = curve.groupby("model")["clean"].first()
    assert list(curve["eps"].unique()) == rs.CURVE_EPS
    assert by["cnn-medium-s0", 0.5] > 0.8 * clean["cnn-medium-s0"]
    assert by["cnn-medium-s0", 3.0] <= 0.05 * clean["cnn-medium-s0"]
    assert by["cnn-adv-l2", 3.0] > by["cnn-medium-s0", 3.0] + 0.1
    for m in ("cnn-medium-s0", "cnn-adv-l2"):
        assert list(by[m].sort_index()) == sorted(by[m], reverse=True), "robust accuracy falls as ε grows"


def test_a_rerun_reads_the_workspace(section, monkeypatch):
    world, models, _ = section

    def refuse(*a, **k):
        raise AssertionError("the rerun rebuilt something")

    for name in ("robust_datasets", "robust_study", "robust_accuracy"):
        monkeypatch.setattr(rs, name, refuse)
    sec, _ = rs.robust_section(world, models, progress=False)
    assert sec.title == "What do robust and non-robust features teach?"


def test_the_mnist_part_shows_the_cached_study_and_its_misses(tmp_path):
    """Without a cached study the part says which command to run; with one it shows both tables beside the
    published figures, names the cells more than 0.1 off, and draws the grid, inside the demo's section too."""
    import numpy as np
    import pandas as pd

    from shiftlab.analyze.robustfeatures.mnist import GROUP_COLUMNS, PUBLISHED, MnistResult, MnistSettings, write_result
    from shiftlab.report import Section
    from shiftlab.workspace import Workspace

    ws = Workspace.resolve(tmp_path / "ws")
    empty = rs.mnist_section(ws)
    assert any(rs.MNIST_COMMAND in str(getattr(b, "text", "")) for b in empty.blocks)
    t1 = pd.DataFrame([["standard", *PUBLISHED["table1"]["standard"]],
                       ["worst-of-k", 0.5, *PUBLISHED["table1"]["worst-of-k"][1:]]], columns=["model", *GROUP_COLUMNS])
    t2 = pd.DataFrame([[k, *v] for k, v in PUBLISHED["table2"].items()], columns=["trained on", *GROUP_COLUMNS])
    grid = {k: np.zeros((10, 28, 28), np.float32) for k in ("original", "robust", "nonrobust")}
    write_result(MnistResult(t1, t2, grid, {**MnistSettings().__dict__}, "fake", {"total": 1.0}),
                 ws.root / "robustfeatures" / "mnist")
    part = rs.mnist_section(ws)
    kinds = [type(b).__name__ for b in part.blocks]
    assert kinds.count("TableBlock") == 2 and kinds.count("FigureBlock") == 1
    text = " ".join(str(getattr(b, "text", "")) for b in part.blocks)
    assert "worst-of-k 1 vertical lines: 0.500 vs 0.968" in text and "standard 1" not in text
    host = rs.mnist_section(ws, into=Section("host"))
    assert host.title == "host" and [type(b).__name__ for b in host.blocks][1:] == kinds
    # a study that recorded its per-epoch curves adds their figure
    curves = {"standard": [{"epoch": e, **dict.fromkeys(GROUP_COLUMNS, 0.5)} for e in (1, 2)]}
    write_result(MnistResult(t1, t2, grid, {**MnistSettings().__dict__}, "fake", {"total": 1.0}, curves),
                 ws.root / "robustfeatures" / "mnist")
    figures = [b for b in rs.mnist_section(ws).blocks if type(b).__name__ == "FigureBlock"]
    assert len(figures) == 2 and "every epoch" in figures[1].caption
