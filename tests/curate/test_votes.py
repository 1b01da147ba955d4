"""Crowd results import (SPECS S1.2): selection frequencies, worker accuracies, errors."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from shiftlab.curate.annotate import Hit, HitImage, make_hits, read_hit_batch, read_hit_batch_seed, write_hit_batch
from shiftlab.curate.votes import attach_frequencies, import_votes
from shiftlab.data.classes import digits
from shiftlab.errors import InputError


def _hit(hit_id, k, items):
    return Hit(hit_id, k, tuple(HitImage(f"img/{hit_id}-{i}.png", i, r) for i, r in items))


HITS = [
    _hit("h1", 0, [("a", "candidate"), ("b", "candidate"), ("p", "positive"), ("n", "negative")]),
    _hit("h2", 0, [("c", "candidate"), ("a", "candidate"), ("p", "positive"), ("n", "negative")]),
    _hit("h3", 1, [("a", "candidate"), ("n", "positive"), ("p", "negative")]),
]
BY_ID = {h.hit_id: h for h in HITS}


def _row(hit_id, aid, worker, status, ticked, answers=None):
    h = BY_ID[hit_id]
    row = {"HITId": hit_id, "AssignmentId": aid, "WorkerId": worker, "AssignmentStatus": status,
           "AcceptTime": "", "SubmitTime": "", "Input.hit_id": hit_id, "Input.class_index": h.class_index}
    for i in range(4):
        row[f"Input.image_{i + 1}"] = h.images[i].url if i < len(h.images) else ""
    for i in range(4):
        if i >= len(h.images):
            row[f"Answer.image_{i + 1}"] = ""
        elif answers is not None:
            row[f"Answer.image_{i + 1}"] = answers[i]
        else:
            row[f"Answer.image_{i + 1}"] = "true" if h.images[i].image_id in ticked else "false"
    return row


# W1: always right on controls; W2: ticks everything; W3: rejected once, otherwise right
ROWS = [
    _row("h1", "A1", "W1", "Approved", {"a", "p"}),
    _row("h1", "A2", "W2", "Submitted", {"a", "b", "p", "n"}),
    _row("h1", "A3", "W3", "Rejected", {"b", "n"}),  # never counts
    _row("h2", "A4", "W1", "Approved", {"c", "p"}),
    _row("h2", "A5", "W3", "Approved", {"a", "p"}),
    _row("h3", "A6", "W1", "Approved", {"n"}),
    _row("h3", "A7", "W2", "Approved", {"a", "n", "p"}),
]


@pytest.fixture
def batch(tmp_path):
    write_hit_batch(HITS, tmp_path / "hits", ["zero", "one"], ["gloss 0", "gloss 1"], seed=7)
    return tmp_path / "hits" / "batch.json"


def _write(tmp_path, rows, name="results.csv"):
    p = tmp_path / name
    pd.DataFrame(rows).to_csv(p, index=False)
    return p


def _freq(result, image, k):
    f = result.frequencies
    r = f[(f.image_id == image) & (f.class_index == k)]
    assert len(r) == 1
    return r.iloc[0]


def test_batch_roundtrip(tmp_path, batch):
    assert read_hit_batch(batch) == HITS
    assert read_hit_batch(batch.parent) == HITS
    assert read_hit_batch_seed(batch) == 7
    inp = pd.read_csv(batch.parent / "input.csv", keep_default_na=False)
    assert list(inp.hit_id) == ["h1", "h2", "h3"]
    assert list(inp.class_name) == ["zero", "zero", "one"]
    assert inp.loc[2, "image_4"] == ""  # the 3-image HIT is padded


def test_batch_of_make_hits_roundtrips(tmp_path):
    hits = make_hits({0: [f"c{i}" for i in range(50)]}, {0: ["p1", "p2", "p3"]}, {0: ["n1", "n2", "n3"]}, seed=3)
    write_hit_batch(hits, tmp_path, digits().names, seed=3)
    assert read_hit_batch(tmp_path / "batch.json") == hits


def test_exact_frequencies(tmp_path, batch):
    r = import_votes(_write(tmp_path, ROWS), batch)
    # (a, 0): h1 valid A1 yes, A2 yes (A3 rejected); h2 A4 no, A5 yes → 3/4, pooled over two HITs
    a0 = _freq(r, "a", 0)
    assert (a0.n_valid, a0.n_yes, a0.n_hits, a0.n_answers) == (4, 3, 2, 5)
    assert a0.frequency == pytest.approx(0.75)
    # (b, 0): A1 no, A2 yes; the rejected A3 tick does not count
    b0 = _freq(r, "b", 0)
    assert (b0.n_valid, b0.n_yes) == (2, 1)
    c0 = _freq(r, "c", 0)
    assert (c0.n_valid, c0.n_yes, c0.frequency) == (2, 1, 0.5)
    # (a, 1) is a separate pair: A6 no, A7 yes
    assert _freq(r, "a", 1).frequency == pytest.approx(0.5)
    # controls get frequencies too
    p0 = _freq(r, "p", 0)
    assert (p0.role, p0.n_valid, p0.n_yes) == ("positive", 4, 4)
    n0 = _freq(r, "n", 0)
    assert (n0.role, n0.n_valid, n0.n_yes) == ("negative", 4, 1)
    assert _freq(r, "n", 1).role == "positive"
    assert len(r.frequencies) == 8  # class 0: a b c p n; class 1: a n p
    assert (r.n_assignments, r.n_valid_assignments, r.n_rejected) == (7, 6, 1)


def test_worker_accuracies(tmp_path, batch):
    r = import_votes(_write(tmp_path, ROWS), batch)
    w = r.workers.set_index("worker_id")
    assert list(w.index) == ["W1", "W2", "W3"]
    # W1: 6 controls, all right
    assert (w.loc["W1", "n_controls"], w.loc["W1", "n_controls_correct"]) == (6, 6)
    assert w.loc["W1", "control_accuracy"] == 1.0
    # W2: h1 p right, n wrong; h3 n (positive) right, p (negative) wrong → 2/4
    assert w.loc["W2", "control_accuracy"] == pytest.approx(0.5)
    assert w.loc["W2", "positive_recall"] == 1.0 and w.loc["W2", "negative_specificity"] == 0.0
    # W3: rejected h1 (p missed, n ticked: 0/2) + h2 (2/2) → 2/4; rejected assignments count for monitoring
    assert w.loc["W3", "control_accuracy"] == pytest.approx(0.5)
    assert (w.loc["W3", "n_assignments"], w.loc["W3", "n_valid_assignments"], w.loc["W3", "n_rejected"]) == (2, 1, 1)
    assert not w["dropped"].any()


def test_worker_filter_is_opt_in(tmp_path, batch):
    r = import_votes(_write(tmp_path, ROWS), batch, min_worker_accuracy=0.75)
    assert r.dropped_workers == ("W2", "W3")
    assert r.n_dropped_assignments == 3  # A2, A5, A7 (A3 was rejected anyway)
    assert list(r.workers.dropped) == [False, True, True]
    a0 = _freq(r, "a", 0)
    assert (a0.n_valid, a0.n_yes) == (2, 1)  # only W1 left
    assert r.summary()["dropped_workers"] == 2


def test_blacklisted_hits_excluded(tmp_path, batch):
    r = import_votes(_write(tmp_path, ROWS), batch, blacklist_hits=["h2"])
    a0 = _freq(r, "a", 0)
    assert (a0.n_valid, a0.n_yes, a0.n_hits) == (2, 2, 1)
    assert not (r.frequencies.image_id == "c").any()
    assert r.n_assignments == 5
    assert r.workers.set_index("worker_id").loc["W1", "n_controls"] == 4
    with pytest.raises(InputError, match="not in the HIT batch"):
        import_votes(_write(tmp_path, ROWS), batch, blacklist_hits=["h9"])


def test_answer_spellings(tmp_path, batch):
    rows = [_row("h1", "A1", "W1", "Approved", set(), answers=["on", "1", "", "0"]),
            _row("h1", "A2", "W2", "Approved", set(), answers=["TRUE", "false", "true", "False"])]
    r = import_votes(_write(tmp_path, rows), batch)
    assert _freq(r, "a", 0).n_yes == 2 and _freq(r, "b", 0).n_yes == 1
    assert _freq(r, "p", 0).n_yes == 1 and _freq(r, "n", 0).n_yes == 0


def test_accepts_hit_list(tmp_path):
    r = import_votes(_write(tmp_path, ROWS), HITS)
    assert _freq(r, "a", 0).frequency == pytest.approx(0.75)


def test_attach_frequencies(tmp_path, batch):
    from shiftlab.data.manifest import Manifest

    r = import_votes(_write(tmp_path, ROWS), batch)
    m = Manifest(pd.DataFrame({"id": ["a", "b", "zz"], "path": [None] * 3, "sha256": [None] * 3,
                               "label": [0, 0, 1]}), name="pool", vocabulary=digits())
    t = attach_frequencies(m, r).table
    assert t.selection_frequency[0] == pytest.approx(0.75) and t.n_annotations[0] == 4
    assert t.selection_frequency[1] == pytest.approx(0.5)
    assert np.isnan(t.selection_frequency[2]) and t.n_annotations[2] == 0


@pytest.mark.parametrize("mutate, match", [
    (lambda rows: rows[0].update({"Input.hit_id": "h9", "HITId": "h9"}), "HIT 'h9' is not in the HIT batch"),
    (lambda rows: rows[0].update({"Input.image_2": "img/other.png"}), "not in HIT h1"),
    (lambda rows: rows[0].update({"Answer.image_1": "maybe"}), "not true/false"),
    (lambda rows: rows[0].update({"AssignmentStatus": "Lost"}), "AssignmentStatus"),
    (lambda rows: [r.pop("WorkerId") for r in rows], "lacks column.*WorkerId"),
    (lambda rows: [r.pop("Answer.image_3") for r in rows], "lacks column.*Answer.image_3"),
    (lambda rows: [r.pop(k) for r in rows for k in [c for c in list(r) if c.startswith("Input.image")]],
     "lacks column"),
])
def test_errors_are_one_line(tmp_path, batch, mutate, match):
    rows = [dict(r) for r in ROWS]
    mutate(rows)
    with pytest.raises(InputError, match=match) as e:
        import_votes(_write(tmp_path, rows), batch)
    assert "\n" not in str(e.value)


def test_bad_batch_and_missing_results(tmp_path, batch):
    (tmp_path / "bad.json").write_text(json.dumps({"hits": [{"hit_id": "x"}]}))
    with pytest.raises(InputError, match="malformed HIT batch"):
        import_votes(_write(tmp_path, ROWS), tmp_path / "bad.json")
    with pytest.raises(InputError, match="no such results file"):
        import_votes(tmp_path / "nope.csv", batch)


# --- the embedded world -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from shiftlab.world import build_world

    return build_world(tmp_path_factory.mktemp("world") / "ws", progress=False)


@pytest.fixture(scope="module")
def world_votes(world):
    return import_votes(world.root / "hits" / "results.csv", world.root / "hits" / "batch.json")


def test_world_every_candidate_annotated(world, world_votes):
    pool = world.manifest("pool")
    cand = world_votes.for_role("candidate")
    got = cand.set_index(["image_id", "class_index"])
    keys = list(zip(pool.table.id, pool.table.label))
    assert all(k in got.index for k in keys)
    # the test images are annotated as candidates too (ImageNetV2 annotated its validation images)
    assert len(cand) == len(pool) + len(world.manifest("test"))
    # rejected assignments were re-posted, so every candidate has ≥ 10 valid annotations (S1.5's minimum)
    assert (cand.n_valid >= 10).all()
    assert (cand.n_answers > cand.n_valid).any()  # and the rejected answers were seen but not counted


def test_world_frequency_separates_wrong_class(world, world_votes):
    truth = world.truth("pool")[["id", "true_label"]]
    cand = world_votes.for_role("candidate").merge(truth, left_on="image_id", right_on="id")
    right = cand.true_label == cand.class_index
    assert (~right).sum() > 10
    assert cand[right].frequency.mean() - cand[~right].frequency.mean() > 0.4


def test_world_spammers_have_lowest_accuracy(world, world_votes):
    wt = pd.read_parquet(world.root / "truth" / "workers.parquet")
    m = world_votes.workers.merge(wt, on="worker_id")
    assert len(m) == len(world_votes.workers)
    assert wt.is_spammer.sum() == 3
    # a worker seen on one HIT (6 controls) says little; among the well-observed, the spammers are the worst
    seen = m[m.n_controls >= 12]
    spam = set(seen.worker_id[seen.is_spammer])
    assert len(spam) >= 2
    assert set(seen.sort_values("control_accuracy").worker_id.head(len(spam))) == spam
    # the opt-in filter drops them and no honest worker
    r = import_votes(world.root / "hits" / "results.csv", world.root / "hits" / "batch.json",
                     min_worker_accuracy=0.7)
    assert spam <= set(r.dropped_workers) <= set(wt.worker_id[wt.is_spammer])
