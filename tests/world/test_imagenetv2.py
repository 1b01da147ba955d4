"""ImageNetV2's steps as library calls (what `shiftlab dedup` and `shiftlab sample` run) on the digits world."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from shiftlab.curate.imagenetv2 import dedup_pool, sample_pool_revision
from shiftlab.errors import InputError
from shiftlab.world.imagenetv2 import planted_recall


@pytest.fixture(scope="module")
def world_pool(tmp_path_factory):
    from shiftlab.curate.votes import attach_frequencies, import_votes
    from shiftlab.workspace import Workspace
    from shiftlab.world import build_world

    ws = Workspace.resolve(tmp_path_factory.mktemp("pipeline") / "ws")
    world = build_world(ws, progress=False)
    votes = import_votes(world.hits_results, world.root / "hits" / "batch.json")
    pool, test = (attach_frequencies(world.manifest(s), votes) for s in ("pool", "test"))
    return world, ws, pool, test


def test_dedup_review_then_sample_leaves_no_copy_of_a_train_or_test_image(world_pool, tmp_path):
    world, ws, pool, test = world_pool
    refs = {s: world.manifest(s) for s in ("train", "test", "pool")}
    search = {"k": 10, "review_k": 10, "size": 64, "workspace": ws, "device": "cpu"}
    thresholds = {"l2": 5e6, "phash": 8.0}  # world-scale l2 and phash; aligned keeps its own 0.02
    first = dedup_pool(pool, refs, ["l2", "phash", "aligned"], thresholds=thresholds, **search)
    assert first.resolution is None and set(first.queue["metric"]) == {"l2", "phash", "aligned"}
    # a reviewer decides every queued pair: duplicates exactly where the world planted them
    truth = world.truth()["duplicates"]
    planted = {frozenset((d["id"], d["source_id"])) for d in truth}
    pairs = first.queue[["query_id", "reference_id"]].drop_duplicates()
    reviews = pd.DataFrame({"query": pairs.query_id, "reference": pairs.reference_id, "reviewer": "ann",
                            "is_duplicate": [frozenset(p) in planted for p in zip(pairs.query_id, pairs.reference_id)]})
    r = dedup_pool(pool, refs, ["l2", "phash", "aligned"], thresholds=thresholds, reviews=reviews, **search)
    pd.testing.assert_frame_equal(r.queue, first.queue)
    source = pool.table.set_index("id")["source_id"]
    same = [p for p in planted if len({source.get(x, x) for x in p}) == 1]
    rec = planted_recall(r.table, r.queue, {"aligned": 0.02, **thresholds}, planted, same, review_k=10)
    rec = rec.set_index("metric")
    assert rec.loc["any metric", "queued"] == rec.loc["any metric", "queueable"] == 58
    assert rec.loc["any metric", "found"] == len(planted) == 66
    written = r.write(tmp_path / "dd")
    assert sorted(p.name for p in written) == ["neighbours.parquet", "queue.csv", "queue_thresholds.json",
                                               "resolution.parquet", "review_thresholds.parquet"]
    copies = {d["id"] for d in truth if d["source_split"] in ("train", "test")}
    res = r.resolution.set_index("id")
    assert not res.loc[sorted(copies), "keep"].any()

    fixed = {"time_string": "2026-01-01_00:00:00_UTC", "username": "ci"}
    targets = {"aligned": 0.02, **thresholds}
    for letter in "abc":
        # S1.3's targets are the thresholds the queue was built with: read from the folder by default
        given = {"review_targets": targets} if letter == "a" else {}
        s = sample_pool_revision(pool, letter, seed=3, dedup_dir=tmp_path / "dd", validation=test,
                                 allow_upward_sampling=True, **given, **fixed)
        assert s.revision.is_valid and len(s.manifest) == 100 and not set(s.manifest.ids) & copies
        assert s.manifest.name == f"world-{letter}-0" and s.manifest.parent == pool.name
        assert s.revision.doc["near_duplicate_review_targets"] == targets
        assert int(s.candidates.near_duplicate.sum()) == int((~r.resolution.keep).sum())
    # its successor, from the written file
    path = s.revision.write(tmp_path / s.revision.filename)
    child = sample_pool_revision(pool, "c", seed=4, dedup_dir=tmp_path / "dd", parent=path, review_targets=targets,
                                 **fixed)
    assert child.revision.name == "world-c-1" and json.loads(child.revision.dumps())["starting_from"] == path.name
    assert child.manifest.parent == "world-c-0"
    with pytest.raises(InputError, match="review_thresholds.parquet"):
        sample_pool_revision(pool, "a", seed=3, dedup_dir=tmp_path / "nothing-here")
    with pytest.raises(InputError, match="reference-val"):
        sample_pool_revision(pool, "b", seed=3, dedup_dir=None)
