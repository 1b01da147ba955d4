"""The digits world: deterministic, and every planted fact is what the ground truth says it is."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from skimage.metrics import structural_similarity

from shiftlab.errors import ShiftlabError
from shiftlab.world import SPLITS, WorldConfig, build_world, load_world
from shiftlab.world import hierarchy as H
from shiftlab.world.plants import CORNER_MARK


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return build_world(tmp_path_factory.mktemp("world") / "ws", progress=False)


def pixels(world, split) -> dict[str, np.ndarray]:
    m = world.manifest(split)
    return {i: np.asarray(Image.open(f"{m.root}/{p}")) for i, p in zip(m.ids, m.table["path"])}


def dssim(a, b) -> float:
    return (1 - structural_similarity(a, b, channel_axis=-1, data_range=255, win_size=7)) / 2


def test_splits_are_registered_manifests_with_image_files(world):
    counts = {s: len(world.manifest(s)) for s in SPLITS}
    assert counts == {"train": 1000, "test": 350, "pool": 513, "spurious": 90, "multilabel": 300,
                      "grey28-train": 1000, "grey28-test": 350}
    m = world.manifest("train")
    assert m.vocabulary.name == "digits" and sorted(set(m.labels)) == list(range(10))
    assert all(p.is_file() for p in m.abspaths())
    assert Image.open(m.abspaths()[0]).size == (32, 32)
    assert load_world(world.workspace).info == world.info


def test_same_seed_same_bytes_other_seed_other_world(world, tmp_path):
    again = build_world(tmp_path / "a", progress=False)
    for s in SPLITS:
        # the image roots differ (they are not part of the hash); everything else is identical
        assert world.manifest(s).content_hash == again.manifest(s).content_hash
        assert world.manifest(s).table.equals(again.manifest(s).table)
    assert (world.root / "hits" / "results.csv").read_bytes() == (again.root / "hits" / "results.csv").read_bytes()
    before = {s: (again.workspace.manifests / f"world-{s}.parquet").read_bytes() for s in SPLITS}
    build_world(again.workspace, progress=False, force=True)
    assert all((again.workspace.manifests / f"world-{s}.parquet").read_bytes() == before[s] for s in SPLITS)
    other = build_world(tmp_path / "b", WorldConfig(seed=1), progress=False)
    assert other.manifest("train").content_hash != world.manifest("train").content_hash


def test_a_second_build_reuses_the_world(world, monkeypatch):
    import shiftlab.world.build as b

    monkeypatch.setattr(b, "_build", lambda *a, **k: pytest.fail("rebuilt an existing world"))
    assert build_world(world.workspace, progress=False).info == world.info


def test_unbuilt_world_says_what_to_run(tmp_path):
    with pytest.raises(ShiftlabError, match="shiftlab world build"):
        load_world(tmp_path / "empty")


def test_planted_duplicates_are_near_copies_never_byte_copies(world):
    truth = world.truth()["duplicates"]
    assert len(truth) == 66
    assert {d["source_split"] for d in truth} == {"train", "test", "pool"}
    assert {d["transform"] for d in truth} == {"reencode", "shift", "brightness", "crop-resize"}
    imgs = {s: pixels(world, s) for s in ("train", "test", "pool")}
    sha = {s: dict(zip(world.manifest(s).ids, world.manifest(s).table["sha256"])) for s in ("train", "test", "pool")}
    same_class = []
    train_ids, train_labels = world.manifest("train").ids, world.manifest("train").labels
    for i in range(0, 300, 7):
        for j in range(i + 1, 300, 11):
            if train_labels[i] == train_labels[j]:
                same_class.append(dssim(imgs["train"][train_ids[i]], imgs["train"][train_ids[j]]))
    typical = np.median(same_class)
    rank1 = 0
    for d in truth:
        x, src = imgs["pool"][d["id"]], imgs[d["source_split"]][d["source_id"]]
        assert sha["pool"][d["id"]] != sha[d["source_split"]][d["source_id"]]
        assert not np.array_equal(x, src)
        assert dssim(x, src) < typical  # closer to its source than two writings of the same digit usually are
        dist = {k: np.sum((v.astype(float) - x) ** 2) for k, v in imgs[d["source_split"]].items() if k != d["id"]}
        rank1 += min(dist, key=dist.get) == d["source_id"]
    assert rank1 >= 0.8 * len(truth)  # most are the nearest image; a few (shifts, crops) are harder to find
    pool = world.manifest("pool").table.set_index("id")
    shared = [d for d in truth if d["same_source_id"]]
    assert shared and all(pool.loc[d["id"], "source_id"] == pool.loc[d["source_id"], "source_id"] for d in shared)


def test_spurious_cue_covers_the_stated_fraction_and_is_not_the_only_signal(world):
    t = world.truth("train")
    cfg = world.info["config"]
    for c in cfg["spurious_classes"]:
        k = t[t.true_label == c]
        assert (k.cue == c).sum() == round(cfg["cue_rate_train"] * len(k))
        # the cue also shows up on other digits, so it is not a perfect predictor of the class
        assert ((t.cue == c) & (t.true_label != c)).sum() > 0
    # the cue is visible where the truth says: the mark's colour dominates its corner
    imgs = pixels(world, "train")
    red = lambda a: (a[1:7, 1:7, 0].astype(int) - a[1:7, 1:7, 1]).max() > 100  # noqa: E731
    has = t.set_index("id").cue == 2
    assert all(red(imgs[i]) == bool(has[i]) for i in t.id)
    # a linear model that never sees the cue regions still recognises the spurious classes
    from sklearn.linear_model import LogisticRegression

    def masked(split):
        m = world.manifest(split)
        x = np.stack([np.asarray(Image.open(p), dtype=np.float32) / 255 for p in m.abspaths()])
        x[:, :7, :, :] = 0.5  # hide the top rows, where all three cues live
        x = x.mean(axis=3).reshape(len(x), 16, 2, 16, 2).mean(axis=(2, 4))  # 16×16 grey keeps it quick
        return x.reshape(len(x), -1), world.truth(split).true_label.to_numpy()

    xtr, ytr = masked("train")
    xte, yte = masked("test")
    clf = LogisticRegression(max_iter=500, C=1.0).fit(xtr, ytr)
    spur = np.isin(yte, cfg["spurious_classes"])
    assert (clf.predict(xte[spur]) == yte[spur]).mean() > 0.85


def test_spurious_set_shows_each_cue_without_its_digit(world):
    m = world.manifest("spurious").table
    for c in (2, 6, 9):
        rows = m[m.cue_class == c]
        assert len(rows) == 30 and (rows.label != c).all() and (rows.label == -1).sum() == 5


def test_label_errors_in_test(world):
    t = world.truth("test")
    errors = world.truth()["label_errors"]
    assert len(errors) == round(0.03 * 350) == (t.given_label != t.true_label).sum()
    given = dict(zip(world.manifest("test").ids, world.manifest("test").labels))
    assert all(given[e["id"]] == e["given"] != e["true"] for e in errors)


def test_watermarks_corner_ones_crop_away_central_ones_cannot(world):
    marks = world.truth()["watermarks"]
    kinds = pd.Series([w["kind"] for w in marks]).value_counts()
    assert kinds["corner"] >= 20 and kinds["central"] >= 10
    tables = {s: world.truth(s).set_index("id") for s in ("test", "pool")}
    imgs = {s: pixels(world, s) for s in ("test", "pool")}
    x0, y0, x1, y1 = CORNER_MARK
    for w in marks:
        row = tables[w["split"]].loc[w["id"]]
        img = imgs[w["split"]][w["id"]]
        if w["kind"] == "corner":
            bx0, by0, bx1, by1 = w["crop_box"]
            dx0, dy0, dx1, dy1 = row.digit_box
            assert bx0 <= dx0 and by0 <= dy0 and dx1 <= bx1 and dy1 <= by1  # the digit survives the crop
            assert by1 <= y0  # and the mark does not
            plate = img[y0 + 1:y1 - 1, x0 + 1:x1 - 1].mean(axis=2)
            assert plate.min() < 140 and plate.max() > 200  # dark letters on a light plate
        else:
            assert w["crop_box"] is None


def test_pool_carries_what_a_builder_knows_and_the_truth_what_was_planted(world):
    pool = world.manifest("pool").table
    truth = world.truth("pool").set_index("id").loc[pool.id]
    assert (pool.label.to_numpy() == truth.collected_for.to_numpy()).all()
    wrong = (truth.collected_for != truth.true_label).mean()
    assert 0.05 < wrong < 0.2
    assert {"source_id", "date_taken", "search_key"} <= set(pool.columns)
    assert "true_label" not in pool.columns and "clarity" not in pool.columns


def test_hit_results_have_the_crowd_platform_shape_and_track_the_truth(world):
    batch = json.loads((world.root / "hits" / "batch.json").read_text())["hits"]
    for h in batch:
        roles = pd.Series([i["role"] for i in h["images"]]).value_counts()
        assert len(h["images"]) == 48 and roles["positive"] == 3 and roles["negative"] == 3
        assert all(i["url"].startswith("img/") and i["image_id"] not in i["url"] for i in h["images"])
        assert len({i["image_id"] for i in h["images"]}) == 48  # nobody sees an image twice in one HIT
    res = pd.read_csv(world.hits_results)
    assert res[res.AssignmentStatus != "Rejected"].groupby("HITId").size().eq(10).all()
    assert res.groupby("HITId").WorkerId.nunique().equals(res.groupby("HITId").size())  # distinct workers
    assert set(res.AssignmentStatus) <= {"Approved", "Submitted", "Rejected"}
    assert [c for c in res.columns if c.startswith("Answer.")] == [f"Answer.image_{i}" for i in range(1, 49)]
    # selection frequency from valid assignments: high for true-class candidates, low for wrong ones
    url_to_id = {i["url"]: i["image_id"] for h in batch for i in h["images"]}
    valid = res[res.AssignmentStatus != "Rejected"]
    long = pd.concat([pd.DataFrame({"id": valid[f"Input.image_{i}"].map(url_to_id), "cls": valid["Input.class_index"],
                                    "tick": valid[f"Answer.image_{i}"]}) for i in range(1, 49)])
    v = long.groupby(["id", "cls"]).tick.mean()
    truth = world.truth("pool").set_index("id")
    freq = v.reset_index()
    freq = freq[freq.id.isin(truth.index)]
    freq["correct"] = truth.loc[freq.id, "true_label"].to_numpy() == freq.cls.to_numpy()
    freq["clarity"] = truth.loc[freq.id, "clarity"].to_numpy()
    assert freq[freq.correct].tick.mean() - freq[~freq.correct].tick.mean() > 0.4
    assert np.corrcoef(freq[freq.correct].clarity, freq[freq.correct].tick)[0, 1] > 0.3
    assert 0.2 < (freq[freq.correct].tick >= 0.7).mean() < 0.95  # a realistic spread, not all-or-nothing


def test_multilabel_set_in_tfds_shape(world):
    recs = [json.loads(x) for x in (world.root / "multilabel" / "validation.jsonl").read_text().splitlines()]
    m_split = [json.loads(x) for x in (world.root / "multilabel" / "imagenet_m.jsonl").read_text().splitlines()]
    assert len(recs) == 300 and len(m_split) == 30
    fields = {"file_name", "original_label", "correct_multi_labels", "wrong_multi_labels", "unclear_multi_labels",
              "is_problematic"}
    assert all(set(r) == fields for r in recs)
    assert {r["file_name"] for r in m_split} <= {r["file_name"] for r in recs}
    kinds = world.truth("multilabel").set_index("id").kind
    for r in recs:
        kind = kinds[r["file_name"][:-4]]
        if kind == "two-digit":
            assert len(r["correct_multi_labels"]) == 2 and r["original_label"] in r["correct_multi_labels"]
        elif kind == "blend":
            assert r["correct_multi_labels"] == [] and len(r["unclear_multi_labels"]) == 2
        elif kind == "problematic":
            assert r["is_problematic"] and r["correct_multi_labels"] == []
        else:
            assert r["correct_multi_labels"] == [r["original_label"]] and not r["is_problematic"]
    files = set(world.manifest("multilabel").table.path.str.split("/").str[-1])
    assert {r["file_name"] for r in recs} == files


def test_grey28_view_is_mnist_like(world):
    m = world.manifest("grey28-train")
    a = np.stack([np.asarray(Image.open(p)) for p in m.abspaths()[:50]])
    assert a.shape == (50, 28, 28) and a.dtype == np.uint8
    assert np.median(a[:, :3, :].max(axis=(1, 2))) < 10 and a.max() > 200 and a.mean() < 60  # white on black
    assert (m.labels == world.truth("train").true_label.to_numpy()).all()


def test_class_hierarchy_in_breeds_format(world):
    edges = [line.split() for line in (world.root / "hierarchy" / "class_hierarchy.txt").read_text().splitlines()]
    parent = {c: p for p, c in edges}
    assert all(parent[parent[f"d{k}"]] == "digit" for k in range(10))
    assert parent["d6"] == parent["d8"] != parent["d1"]
    sim = json.loads((world.root / "hierarchy" / "most_similar.json").read_text())
    assert all(v[0] == k and len(v) == 10 for k, v in sim.items())
    assert H.superclass(3) == H.superclass(5) == "curves"
