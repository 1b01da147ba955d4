"""The demo's easy-set section (SPECS S5 on the world): the world's reviewer acts on exactly the planted watermarks,
the set passes the post-edit check, and the files show the planted crop boxes (the corner mark cut away)."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

from shiftlab.world.easyset_section import ENSEMBLE, TARGET, easyset_section, world_easyset


def test_easyset_from_planted_watermarks(demo):
    from shiftlab.world import build_world
    from shiftlab.world.demo import ZOO
    from shiftlab.world.plants import CORNER_MARK

    ws, _ = demo
    world = build_world(ws, progress=False)
    models = [f"world:{m}" for m in ZOO]
    es = world_easyset(world, models)
    assert es.ranking.target == TARGET and list(es.ranking.ranking) == list(ENSEMBLE)
    marks = {w["id"]: w for w in world.truth()["watermarks"] if w["split"] == "test"}
    d = es.decisions.set_index("target")
    queued = [f for f in es.queue["id"] if f in marks]
    assert queued, "no planted watermark reached the review queue: the section would show nothing"
    # the simulated reviewer acts on exactly the planted marks: crop the corner ones with the planted box, remove
    # the central ones, keep the rest
    for f in es.queue["id"]:
        w = marks.get(f)
        want = ("keep", None) if w is None else ("crop", tuple(w["crop_box"])) if w["kind"] == "corner" else \
            ("remove", None)
        assert (d.loc[f, "decision"], d.loc[f, "crop"]) == want, f
    # the post-edit check passed on every final file; the statistics reconcile with the set
    assert es.build.check["right"].all() and len(es.build.check) == len(es.build.manifest)
    st = es.build.stats
    assert st.figure("images") == len(es.build.manifest)
    assert st.figure("classes") == st.figure("clean") + st.figure("crop_only") + st.figure("substituted") + \
        st.figure("additions")
    # no central mark in the set, and every corner-marked image in it is a crop that cuts the mark away
    t = es.build.manifest.table
    src = dict(zip(world.manifest("test").ids, world.manifest("test").abspaths()))
    n_cropped = 0
    for f, path, crop in zip(t["id"], t["path"], t["crop"]):
        w = marks.get(f)
        assert w is None or w["kind"] == "corner", f
        if w is None:
            assert not isinstance(crop, str)  # no crop (None, or NaN as read back)
            continue
        x0, y0, x1, y1 = json.loads(crop)
        assert [x0, y0, x1, y1] == w["crop_box"] and y1 <= CORNER_MARK[1]  # the mark's rows lie below the crop
        with Image.open(src[f]) as a, Image.open(es.build.folder / "images" / path) as b:
            assert np.array_equal(np.asarray(a.convert("RGB"))[y0:y1, x0:x1], np.asarray(b.convert("RGB")))
        n_cropped += 1
    assert n_cropped == st.figure("cropped")
    assert st.reasons.set_index("reason").loc["watermark", "removal_classes"] == \
        len({int(k) for f, k in zip(es.queue["id"], es.queue["class"]) if marks.get(f, {}).get("kind") == "central"})
    (sec,) = easyset_section(world, models)
    assert sec.title == "Clean, easy images for one model" and len(sec.blocks) >= 3
