"""The demo's spurious-features section (SPECS S3 on the world): the planted cues are found and SpuFix acts."""

from __future__ import annotations

import numpy as np

from shiftlab.world.scheme import SHORTCUT_MODEL
from shiftlab.world.spurious_section import spurious_section, world_components


def test_spurious_section_finds_the_cues_and_spufix_lowers_their_pull(demo):
    from shiftlab.world.demo import ZOO

    ws, result = demo
    html = (ws / "reports" / "demo" / "index.html").read_text()
    assert "Which spurious features does a model rely on?" in html
    for k in (2, 6, 9):
        assert (ws / "reports" / "demo" / f"spurious-component-{k}.png").is_file()
    assert (ws / "reports" / "demo" / "spurious-score.png").is_file()
    from shiftlab.world import build_world

    # the section again on the demo's workspace: everything it needs is stored there, so this only reads
    _, found, scores = spurious_section(build_world(ws, progress=False), [f"world:{m}" for m in ZOO], result.accuracy,
                                        progress=False)
    # the zoo and, last, the CNN trained where the cue is a shortcut
    assert found["model"].tolist() == [*ZOO, SHORTCUT_MODEL] == scores["model"].tolist()
    zoo = found["model"] != SHORTCUT_MODEL
    # every zoo model: each cue class has a component labelled spurious by the ground truth, no false discovery
    for col in [c for c in found.columns if c.endswith("spurious components")]:
        assert (found.loc[zoo, col] != "—").sum() >= zoo.sum() - 1, col
    assert (found["false discoveries (cue-free classes)"] == 0).all()
    # SpuFix: the cue alone earns less of its class's probability, accuracy moves by under a point
    before, after = scores["mean p_k on cue images"], scores["SpuFix: mean p_k on cue images"]
    assert (after <= before + 1e-9).all() and (after < before - 0.005).sum() >= len(scores) // 2
    assert (np.abs(scores["SpuFix: test top-1"] - scores["test top-1"]) < 0.01).all()


def test_spufix_mends_the_model_that_leans_on_the_cue(demo):
    """SPECS S3 on the world: the CNN trained where the cue decides some images calls cue images its class far
    more than any zoo model, scores lowest of the CNNs, and SpuFix (its components labelled by the ground truth)
    raises its spurious score clearly while its test accuracy moves by under a point. Measured on 2026-11-30:
    AP 0.937 → 0.955, ROC-AUC 0.882 → 0.923, mean p_k 0.743 → 0.621, test top-1 93.14 % → 93.43 %; the
    thresholds below are about half of those gains, as zoo training differs across CPUs."""
    from shiftlab.world import build_world
    from shiftlab.world.demo import ZOO

    ws, result = demo
    _, found, scores = spurious_section(build_world(ws, progress=False), [f"world:{m}" for m in ZOO], result.accuracy,
                                        progress=False)
    s = scores.set_index("model")
    sc, cnn_zoo = s.loc[SHORTCUT_MODEL], s.loc[[m for m in ZOO if m.startswith("cnn")]]
    # it leans on the cue: a cue without its digit earns its class most of the probability
    assert sc["mean p_k on cue images"] > 0.5 > cnn_zoo["mean p_k on cue images"].max()
    assert sc["spurious score (AP)"] < cnn_zoo["spurious score (AP)"].min() - 0.02
    assert sc["ROC-AUC"] < cnn_zoo["ROC-AUC"].min() - 0.04
    # the ground truth finds its cue component for at least two of the three cue classes
    row = found.set_index("model").loc[SHORTCUT_MODEL]
    assert sum(row[c] != "—" for c in found.columns if c.endswith("spurious components")) >= 2
    # SpuFix: a clear rise of both scores, a clear fall of p_k on cue images, accuracy within a point
    assert sc["SpuFix: AP"] >= sc["spurious score (AP)"] + 0.01
    assert sc["SpuFix: ROC-AUC"] >= sc["ROC-AUC"] + 0.02
    assert sc["SpuFix: mean p_k on cue images"] <= sc["mean p_k on cue images"] - 0.05
    assert abs(sc["SpuFix: test top-1"] - sc["test top-1"]) < 0.01


def test_world_components_are_reproducible(demo):
    from shiftlab.world import build_world

    ws, _ = demo
    world = build_world(ws, progress=False)
    a = world_components(world, "world:cnn-medium-s0")
    b = world_components(world, "world:cnn-medium-s0")  # the stored bases, read back
    assert a == b and all(a[0][k] for k in (2, 6, 9))
