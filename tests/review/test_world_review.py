"""The review app in the ImageNetV2 process on the digits world: the near-duplicate queue reviewed in the app
feeds S1.4 resolution, and re-sampling gives a new revision (parent recorded) without the images marked
duplicate; the shipped watermark configuration works on the world's planted watermarks."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from shiftlab.review import tasks as tk
from shiftlab.review.app import TOKEN_HEADER, create_app

pytestmark = pytest.mark.slow
H = {TOKEN_HEADER: "t"}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from shiftlab.world import build_world

    return build_world(tmp_path_factory.mktemp("world-review") / "ws", progress=False)


def test_reviewed_queue_gives_a_new_revision_without_the_duplicates(world, tmp_path):
    from shiftlab.cli import main
    from shiftlab.curate import dedup as dd
    from shiftlab.curate.imagenetv2 import DedupResult, dedup_pool, resolve_reviews, sample_pool_revision
    from shiftlab.curate.votes import attach_frequencies, import_votes
    from shiftlab.registry import register_dataset

    ws = world.workspace
    votes = import_votes(world.hits_results, world.root / "hits" / "batch.json")
    pool = attach_frequencies(world.manifest("pool"), votes)
    register_dataset(pool, "world-pool", ws)
    refs = {f"world-{s}": world.manifest(s) for s in ("train", "test")} | {"world-pool": pool}
    found = dedup_pool(pool, refs, ["l2", "phash"], k=10, review_k=10, size=64, workspace=ws)
    thr = dd.quantile_thresholds(found.table, 0.02, review_k=10)
    queue = dd.review_queue(found.table, thr, review_k=10)
    folder = tmp_path / "dedup"
    DedupResult(found.table, queue).write(folder)

    # the first revision was sampled before anyone reviewed the queue (knowingly, without dedup)
    parent = sample_pool_revision(pool, "c", seed=0, dedup_dir=None, per_class=10, time_string="t", username="u")
    parent_path = parent.revision.write(tmp_path / parent.revision.filename)

    # a reviewer works through the queue in the app; what they see decides: planted copies are duplicates
    task = tk.duplicates_task(folder, query="world-pool", workspace=ws)
    planted = {frozenset((d["id"], d["source_id"])) for d in world.truth()["duplicates"]}
    marked = []
    with TestClient(create_app(ws, token="t", reviewer="ann")) as c:
        for it in task["items"]:
            dup = frozenset((it["query"], it["reference"])) in planted
            r = c.post(f"/api/tasks/{task['name']}/decisions", headers=H,
                       json={"target": it["target"], "decision": "duplicate" if dup else "distinct"})
            assert r.status_code == 200
            if dup:
                marked.append((it["query"], it["reference"], it["reference_dataset"]))
    assert main(["-w", str(ws.root), "review", "export", "--task", task["name"], "--format", "reviews",
                 "--out", str(tmp_path / "reviews.csv")]) == 0
    reviews = dd.read_review_csv(tmp_path / "reviews.csv")
    assert len(reviews) == len(task["items"]) and int(reviews["is_duplicate"].sum()) == len(marked)
    links, rthr, res = resolve_reviews(found.table, pool, refs, reviews)
    DedupResult(found.table, queue, links, rthr, res).write(folder)

    child = sample_pool_revision(pool, "c", seed=0, dedup_dir=folder, parent=parent_path, per_class=10,
                                 review_targets=thr, time_string="t", username="u")
    assert child.revision.name == "world-c-1" and child.revision.doc["starting_from"] == parent_path.name
    assert child.manifest.parent == parent_path.stem
    in_parent, in_child = set(parent.manifest.ids), set(child.manifest.ids)
    copies_of_originals = {q for q, _, split in marked if split != "world-pool"}
    assert copies_of_originals & in_parent  # the unreviewed revision had taken some …
    assert not copies_of_originals & in_child  # … the reviewed one has none
    for q, r, split in marked:  # of a within-pool pair, at most one image remains
        if split == "world-pool":
            assert not {q, r} <= in_child
    assert len(in_child) == len(in_parent)  # still 10 per class: the sampler replaced what it dropped


def test_watermark_configuration_on_the_worlds_planted_marks(world):
    """The shipped watermark queue takes what a reviewer sees on the world: corner marks with the crop that
    removes them, central marks without one; the folded state gives back exactly the planted ones."""
    from shiftlab.review.log import read_decisions

    ws = world.workspace
    marks = {w["id"]: w for w in world.truth()["watermarks"] if w["split"] == "pool"}
    pool = world.manifest("pool")
    some_clean = [i for i in pool.ids if i not in marks][:20]
    task = tk.images_task("world-pool", "watermarks", items=[{"id": i} for i in [*marks, *some_clean]], workspace=ws)
    with TestClient(create_app(ws, token="t", reviewer="ann")) as c:
        for it in task["items"]:
            w = marks.get(it["id"])
            if w is None:
                body = {"decision": "clean"}
            elif w["kind"] == "corner":
                body = {"decision": "watermark", "reason": "corner: croppable", "crop": w["crop_box"]}
            else:
                body = {"decision": "watermark", "reason": "central: not croppable"}
            r = c.post(f"/api/tasks/{task['name']}/decisions", headers=H, json={"target": it["id"], **body})
            assert r.status_code == 200, r.text
        # the crop is in the image's own pixels: the page shows the full-size image it was drawn on
        w0 = next(w for w in marks.values() if w["kind"] == "corner")
        import io

        from PIL import Image

        im = Image.open(io.BytesIO(c.get(f"/img/world-pool/{w0['id']}", headers=H).content))
        x0, y0, x1, y1 = w0["crop_box"]
        assert x1 <= im.width and y1 <= im.height and (x1 - x0) * (y1 - y0) < im.width * im.height
    d = read_decisions(tk.log_path(ws), task["name"]).set_index("target")
    flagged = set(d.index[d["decision"] == "watermark"])
    assert flagged == set(marks)
    corner = {i for i, w in marks.items() if w["kind"] == "corner"}
    assert {i for i in flagged if d.loc[i, "crop"] is not None} == corner
    assert all(tuple(d.loc[i, "crop"]) == tuple(marks[i]["crop_box"]) for i in corner)
