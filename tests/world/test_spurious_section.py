"""The demo's spurious-features section (SPECS S3 on the world): the planted cues are found and SpuFix acts."""

from __future__ import annotations

import numpy as np

from shiftlab.world.spurious_section import spurious_section, world_components


def test_spurious_section_finds_the_cues_and_spufix_lowers_their_pull(demo):
    ws, result = demo
    html = (ws / "reports" / "demo" / "index.html").read_text()
    assert "Which spurious features does a model rely on?" in html
    for k in (2, 6, 9):
        assert (ws / "reports" / "demo" / f"spurious-component-{k}.png").is_file()
    assert (ws / "reports" / "demo" / "spurious-score.png").is_file()
    from shiftlab.world import build_world
    from shiftlab.world.demo import ZOO

    # the section again on the demo's workspace: everything it needs is stored there, so this only reads
    _, found, scores = spurious_section(build_world(ws, progress=False), [f"world:{m}" for m in ZOO], result.accuracy,
                                        progress=False)
    # every zoo model: each cue class has a component labelled spurious by the ground truth, no false discovery
    for col in [c for c in found.columns if c.endswith("spurious components")]:
        assert (found[col] != "—").sum() >= len(found) - 1, col
    assert (found["false discoveries (cue-free classes)"] == 0).all()
    # SpuFix: the cue alone earns less of its class's probability, accuracy moves by under a point
    before, after = scores["mean p_k on cue images"], scores["SpuFix: mean p_k on cue images"]
    assert (after <= before + 1e-9).all() and (after < before - 0.005).sum() >= len(scores) // 2
    assert (np.abs(scores["SpuFix: test top-1"] - scores["test top-1"]) < 0.01).all()


def test_world_components_are_reproducible(demo):
    from shiftlab.world import build_world

    ws, _ = demo
    world = build_world(ws, progress=False)
    a = world_components(world, "world:cnn-medium-s0")
    b = world_components(world, "world:cnn-medium-s0")  # the stored bases, read back
    assert a == b and all(a[0][k] for k in (2, 6, 9))
