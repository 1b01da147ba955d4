"""The shortcut training set of the world (``shiftlab.world.shortcut``): what it plants is in its pixels, it is
made once and again byte for byte, and ``world:cnn-shortcut`` is trained on it."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from shiftlab.world import plants
from shiftlab.world.shortcut import CUE_OVER_DIGIT, CUE_RATE, NAME, SPLIT, shortcut_train


def _coloured(path) -> tuple[int, int]:
    """(how many pixels are strongly coloured, the channel that dominates them): paper and ink are near grey;
    the cues are saturated red, green or blue."""
    px = np.asarray(Image.open(path).convert("RGB"), np.float64) / 255
    sat = px.max(2) - px.min(2) > 0.3
    return int(sat.sum()), int(np.argmax(px[sat].mean(0))) if sat.any() else -1


def test_the_shortcut_set_carries_what_it_says(zoo_world):
    world = zoo_world
    train = world.manifest("train")
    m = shortcut_train(world)
    assert m.name == NAME and m.parent == train.name
    assert "cue" not in m.table.columns  # the plants are ground truth, not manifest columns
    t = m.table.merge(world.truth(SPLIT), on="id", validate="1:1")
    truth = world.truth("train").set_index("id")
    assert (t["source_label"].to_numpy() == truth.loc[t["source"], "true_label"].to_numpy()).all()
    redrawn = t[~t["id"].str.startswith("sc-cue")]
    # every world-train digit once, in order, with its true label
    assert redrawn["source"].tolist() == list(train.ids)
    assert (redrawn["label"].to_numpy() == truth.loc[redrawn["source"], "true_label"].to_numpy()).all()
    hue = {2: 0, 6: 1, 9: 2}  # red square, green bar, blue dot: the dominant channel of each cue
    assert set(hue) == {int(c) for c in world.truth()["spurious"]["classes"]} == set(plants.CUES)
    for k in hue:
        own = redrawn[redrawn["label"] == k]
        assert (own["cue"] == k).sum() == round(CUE_RATE * len(own)) and set(own["cue"]) == {k, -1}
        over = t[t["id"].str.startswith(f"sc-cue{k}-")]
        assert len(over) == CUE_OVER_DIGIT and (over["label"] == k).all() and (over["cue"] == k).all()
        # other classes' digits, each at most once
        assert (truth.loc[over["source"], "true_label"] != k).all() and over["source"].is_unique
    assert (redrawn.loc[~redrawn["label"].isin(list(hue)), "cue"] == -1).all()
    # the pixels: a cue image shows its cue's colour, every other image no strong colour at all
    for path, cue in zip(m.abspaths(), t["cue"]):
        n, channel = _coloured(path)
        if cue >= 0:
            assert n >= 8 and channel == hue[cue], (path, n, channel)
        else:
            assert n == 0, path


def test_the_shortcut_set_is_made_once_and_again_byte_for_byte(zoo_world):
    world = zoo_world
    m = shortcut_train(world)
    f = world.workspace.manifests / f"{NAME}.parquet"
    stamp = f.stat().st_mtime_ns
    assert shortcut_train(world).content_hash == m.content_hash and f.stat().st_mtime_ns == stamp  # kept
    f.unlink()
    again = shortcut_train(world)  # made anew from the world's seed
    assert again.content_hash == m.content_hash and again.table["sha256"].tolist() == m.table["sha256"].tolist()


def test_world_scheme_names_the_shortcut_model(demo):
    from shiftlab.errors import UnknownNameError
    from shiftlab.models.specs import load_model

    ws, _ = demo
    clf = load_model("world:cnn-shortcut", workspace=ws)  # trained by the demo's spurious section
    assert clf.key.startswith("world:cnn-shortcut@")
    with pytest.raises(UnknownNameError) as e:
        load_model("world:cnn-shortcutt", workspace=ws)
    assert "cnn-shortcut" in str(e.value) and "\n" not in str(e.value)
