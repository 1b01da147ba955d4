"""The build and the post-edit check (S5 "After edits"): crops written to copies with the boxes the reviewer drew,
originals untouched, provenance per image; a target that gets one final image wrong refuses the export, names the
image, and leaves nothing behind."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from shiftlab.curate.easyset.build import build_easyset, confidences_of
from shiftlab.curate.easyset.decisions import decision_records, queue_items
from shiftlab.curate.easyset.ranking import candidate_table
from shiftlab.data.layouts import read_dataset
from shiftlab.errors import InputError

COLOURNET = f"python:{Path(__file__).with_name('colournet.py')}:colournet"
WNIDS = ("n01440764", "n01443537")  # ImageNet classes 0 and 1


def write_folder(root: Path, blue: str | None = None) -> Path:
    """20 textured PNGs per class, red-dominant for class 0 and green-dominant for class 1 (what ColourNet says);
    ``blue``: the stem of one image drawn blue-dominant instead (ColourNet calls it class 2)."""
    for c, wnid in enumerate(WNIDS):
        for i in range(20):
            rng = np.random.default_rng(100 * c + i)
            arr = rng.integers(0, 100, (30, 44, 3), dtype=np.uint8)
            arr[..., 2 if f"{wnid}_{i:04d}" == blue else c] += 150
            (root / wnid).mkdir(parents=True, exist_ok=True)
            Image.fromarray(arr).save(root / wnid / f"{wnid}_{i:04d}.png")
    return root


def ranked_queue(m):
    """A target whose confidence falls with the file index: its top-5 per class and 3 extras."""
    n = len(m)
    z = np.zeros((n, 1000), np.float32)
    z[np.arange(n), m.labels] = 10.0 - np.arange(n) % 20 / 10
    p = np.exp(z - z.max(1, keepdims=True))
    cand = candidate_table(m.ids, m.labels, {"t": p / p.sum(1, keepdims=True)})
    order = cand.sort_values(["confidence", "id"], ascending=[False, True]).groupby("label")
    lists = {k: [(f, float(c)) for f, c in zip(g["id"], g["confidence"])] for k, g in order}
    return queue_items({k: v[:5] for k, v in lists.items()}, {k: v[5:8] for k, v in lists.items()}), cand


@pytest.fixture
def setup(tmp_path, workspace):
    m = read_dataset(str(write_folder(tmp_path / "src")), workspace=workspace)
    q, cand = ranked_queue(m)
    return m, q, cand, COLOURNET


def decisions(rows):
    import pandas as pd
    return pd.DataFrame([{"target": t, "decision": d, "reason": r, "crop": c, "note": None} for t, d, r, c in rows])


def test_build_writes_crops_and_provenance(setup, tmp_path, workspace):
    m, q, cand, target = setup
    ranked0 = list(q[(q["class"] == 0) & (q["stage"] != "extra")]["id"])
    extras1 = list(q[(q["class"] == 1) & (q["stage"] == "extra")]["id"])
    ranked1 = list(q[(q["class"] == 1) & (q["stage"] != "extra")]["id"])
    d = decisions([(ranked0[0], "crop", "watermark", (2, 3, 40, 30)), (ranked0[1], "remove", "noise", None)]
                  + [(f, "remove", "frame/border", None) for f in ranked1[1:]]
                  + [(extras1[0], "crop", "watermark", (0, 0, 20, 20)), (extras1[1], "keep", None, None),
                     (extras1[2], "keep", None, None)])
    recs = decision_records(d, q)
    before = {p: p.read_bytes() for p in m.abspaths()}
    b = build_easyset(m, recs, q, target, tmp_path / "set", confidences=confidences_of(cand), workspace=workspace,
                      progress=False)
    t = b.manifest.table.set_index("id")
    # class 0: rank 1 cropped, rank 2 removed → ranks 1, 3, 4; class 1: rank 1 + the two uncropped extras
    assert list(t[t["label"] == 0].index) == [ranked0[0], ranked0[2], ranked0[3]]
    assert list(t[t["label"] == 1].index) == [ranked1[0], extras1[1], extras1[2]]
    assert t.loc[ranked0[3], "stage"] == "top-5" and t.loc[extras1[1], "stage"] == "extra"
    assert json.loads(t.loc[ranked0[0], "crop"]) == [2, 3, 40, 30] and t.loc[ranked0[0], "reasons"] == "watermark"
    assert t.loc[ranked0[0], "confidence_t"] > t.loc[ranked0[2], "confidence_t"]
    src = dict(zip(m.ids, m.abspaths()))
    with Image.open(src[ranked0[0]]) as a, Image.open(b.folder / "images" / t.loc[ranked0[0], "path"]) as c:
        assert c.size == (38, 27)
        assert np.array_equal(np.asarray(a)[3:30, 2:40], np.asarray(c))  # exactly the drawn box, lossless
    assert (b.folder / "images" / t.loc[ranked0[2], "path"]).read_bytes() == src[ranked0[2]].read_bytes()
    assert {p: p.read_bytes() for p in m.abspaths()} == before  # originals untouched
    assert b.check["right"].all() and len(b.check) == 6
    assert b.stats.figure("substituted") == 1 and b.stats.figure("filled") == 1
    assert (b.folder / "provenance.csv").is_file() and (b.folder / "manifest.parquet").is_file()


def test_post_edit_check_refuses_and_leaves_nothing(tmp_path, workspace):
    m = read_dataset(str(write_folder(tmp_path / "src", blue="n01440764_0001")), workspace=workspace)
    q, cand = ranked_queue(m)
    recs = decision_records(decisions([]), q)
    with pytest.raises(InputError, match=r"gets 1 of 6 final image\(s\) wrong, export refused: "
                                         r"n01440764_0001.png \(class 0: predicted 2\)"):
        build_easyset(m, recs, q, COLOURNET, tmp_path / "set", confidences=confidences_of(cand), workspace=workspace,
                      progress=False)
    assert not (tmp_path / "set").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".set.")]  # no half-written folder either
    with pytest.raises(InputError, match="re-runs the target"):
        np.savez(tmp_path / "p.npz", ids=m.ids.astype(str), logits=np.zeros((len(m), 1000), np.float32))
        build_easyset(m, recs, q, f"predictions:{tmp_path / 'p.npz'}", tmp_path / "set",
                      confidences=confidences_of(cand), workspace=workspace, progress=False)


def test_crop_without_box_is_refused(setup, tmp_path, workspace):
    m, q, cand, target = setup
    first = q["id"].iloc[0]
    recs = decision_records(decisions([(first, "crop", "watermark", None)]), q)
    with pytest.raises(InputError, match="need a crop but have no crop box"):
        build_easyset(m, recs, q, target, tmp_path / "set", confidences=confidences_of(cand), workspace=workspace,
                      progress=False)
    assert not (tmp_path / "set").exists()
