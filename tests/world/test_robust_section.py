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
    assert len([b for b in sec.blocks if type(b).__name__ == "FigureBlock"]) == 1
    if rs.read_result(world.workspace.root / "robustfeatures" / "mnist") is None:
        assert any(rs.MNIST_COMMAND in str(getattr(b, "text", "")) for b in mnist.blocks)


def test_a_rerun_reads_the_workspace(section, monkeypatch):
    world, models, _ = section

    def refuse(*a, **k):
        raise AssertionError("the rerun rebuilt something")

    for name in ("robust_datasets", "robust_study", "robust_accuracy"):
        monkeypatch.setattr(rs, name, refuse)
    sec, _ = rs.robust_section(world, models, progress=False)
    assert sec.title == "What do robust and non-robust features teach?"
