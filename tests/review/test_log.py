"""The ReviewLog: append-only events, state as a fold, undo as an event, exports, concurrency."""

from __future__ import annotations

import json
import sqlite3
import threading

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shiftlab.errors import InputError
from shiftlab.review.log import UNDO, ReviewLog, fold, read_decisions


@pytest.fixture
def log(tmp_path):
    with ReviewLog(tmp_path / "log.sqlite") as lg:
        yield lg


def test_state_is_the_latest_decision_and_undo_restores_the_previous(log):
    a = log.append(reviewer="ann", task="t", target="x", decision="duplicate")
    b = log.append(reviewer="bob", task="t", target="x", decision="distinct", note="looked again")
    log.append(reviewer="ann", task="t", target="y", decision="duplicate")
    assert {k: e.decision for k, e in log.state("t").items()} == {"x": "distinct", "y": "duplicate"}
    u = log.undo(b.id, reviewer="bob")
    assert (u.decision, u.supersedes, u.target) == (UNDO, b.id, "x")
    assert log.state("t")["x"].id == a.id  # back to ann's decision
    log.undo(a.id, reviewer="ann")
    assert set(log.state("t")) == {"y"}
    assert log.count("t") == 5  # nothing was removed: two undo events were added


def test_undo_last_is_per_reviewer_and_skips_what_is_already_undone(log):
    log.append(reviewer="ann", task="t", target="1", decision="a")
    log.append(reviewer="bob", task="t", target="2", decision="a")
    log.append(reviewer="ann", task="t", target="3", decision="a")
    assert log.undo_last("t", "ann").target == "3"
    assert log.undo_last("t", "ann").target == "1"
    assert log.undo_last("t", "ann") is None
    assert set(log.state("t")) == {"2"}


def test_a_retried_undo_last_undoes_once(log):
    # the page sends a key with every undo; a retry after a lost reply must not take back a second decision
    log.append(reviewer="ann", task="t", target="1", decision="a")
    log.append(reviewer="ann", task="t", target="2", decision="a")
    first = log.undo_last("t", "ann", key="u-1")
    again = log.undo_last("t", "ann", key="u-1")
    assert first.target == "2" and again.id == first.id
    assert set(log.state("t")) == {"1"} and len(log.events("t")) == 3


def test_the_table_refuses_updates_and_deletes(log, tmp_path):
    log.append(reviewer="ann", task="t", target="x", decision="a")
    con = sqlite3.connect(tmp_path / "log.sqlite")
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"  # readers never block the writer
    assert log._con().execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL: on disk when append returns
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        con.execute("UPDATE events SET decision='b'")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        con.execute("DELETE FROM events")
    con.close()
    assert log.state("t")["x"].decision == "a"


def test_a_retried_key_is_stored_once(log):
    e1 = log.append(reviewer="ann", task="t", target="x", decision="a", key="k1")
    e2 = log.append(reviewer="ann", task="t", target="x", decision="a", key="k1")
    assert e1.id == e2.id and log.count() == 1


def test_bad_events_are_refused_with_one_line(log):
    for kw, msg in [(dict(reviewer="", task="t", target="x", decision="a"), "reviewer"),
                    (dict(reviewer="a", task="t", target="x", decision="a", crop=[5, 5, 2, 9]), "crop box"),
                    (dict(reviewer="a", task="t", target="x", decision="a", crop=[1, 2, 3]), "four finite numbers"),
                    (dict(reviewer="a", task="t", target="x", decision="a", crop=[0, 0, float("inf"), 5]), "finite"),
                    (dict(reviewer="a", task="t", target="x", decision=UNDO), "supersedes"),
                    (dict(reviewer="a", task="t", target="x", decision=UNDO, supersedes=99), "does not exist")]:
        with pytest.raises(InputError, match=msg) as ei:
            log.append(**kw)
        assert "\n" not in str(ei.value)
    assert log.count() == 0


def test_crop_boxes_round_trip_and_exports_hold_every_event(log, tmp_path):
    log.append(reviewer="ann", task="w", target="img1", decision="watermark", reason="corner", crop=[0, 2, 20.4, 30])
    e = log.append(reviewer="ann", task="w", target="img2", decision="clean")
    log.undo(e.id, reviewer="ann")
    log.append(reviewer="ann", task="other", target="z", decision="a")
    assert log.state("w")["img1"].crop == (0, 2, 20, 30)
    log.export_jsonl(tmp_path / "w.jsonl", "w")
    rows = [json.loads(s) for s in (tmp_path / "w.jsonl").read_text().splitlines()]
    assert [r["decision"] for r in rows] == ["watermark", "clean", UNDO]
    assert rows[0]["crop"] == [0, 2, 20, 30] and rows[2]["supersedes"] == rows[1]["id"]
    log.export_parquet(tmp_path / "all.parquet")
    df = pd.read_parquet(tmp_path / "all.parquet")
    assert len(df) == 4 and list(df["crop"].iloc[0]) == [0, 2, 20, 30]
    # the one function builders read: the folded state
    d = read_decisions(tmp_path / "log.sqlite", "w")
    assert d[["target", "decision", "reason"]].values.tolist() == [["img1", "watermark", "corner"]]


def test_read_decisions_names_a_missing_log(tmp_path):
    with pytest.raises(InputError, match="no review log"):
        read_decisions(tmp_path / "nope.sqlite", "t")


def test_concurrent_writers_lose_nothing(tmp_path):
    path = tmp_path / "log.sqlite"
    ReviewLog(path).close()

    def work(w):
        with ReviewLog(path) as lg:  # a connection of its own, as a second process would have
            for i in range(50):
                lg.append(reviewer=f"r{w}", task="t", target=f"{w}-{i}", decision="a")

    threads = [threading.Thread(target=work, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with ReviewLog(path) as lg:
        assert lg.count() == 400 and len(lg.state("t")) == 400


ops = st.lists(st.tuples(st.sampled_from(["decide", "undo"]), st.sampled_from("abc"), st.sampled_from("xyz"),
                         st.sampled_from(["p", "q"])), max_size=30)


@settings(max_examples=40, deadline=None)
@given(ops)
def test_fold_matches_a_model_of_decisions_in_force(tmp_path_factory, seq):
    """Model: the decisions still in force, in order; a target shows its last one; undo_last takes back the
    reviewer's newest decision that a target still shows (never one another reviewer has replaced)."""
    with ReviewLog(tmp_path_factory.mktemp("h") / "log.sqlite") as lg:
        history: list[tuple[int, str, str, str]] = []  # (event id, reviewer, target, decision) in force
        for op, target, decision, who in seq:
            if op == "decide":
                e = lg.append(reviewer=who, task="t", target=target, decision=decision)
                history.append((e.id, who, target, decision))
                continue
            shown = {}
            for h in history:
                shown[h[2]] = h
            mine = [h for h in shown.values() if h[1] == who]
            u = lg.undo_last("t", who)
            if mine:
                newest = max(mine)
                assert u.supersedes == newest[0]
                history.remove(newest)
            else:
                assert u is None
        expected = {}
        for _, _, target, decision in history:
            expected[target] = decision
        assert {k: e.decision for k, e in lg.state("t").items()} == expected
        assert fold(lg.events("t")).keys() == expected.keys()


def test_undo_leaves_a_decision_someone_else_replaced_and_never_undoes_twice(log):
    a = log.append(reviewer="ann", task="t", target="x", decision="a")
    log.append(reviewer="bob", task="t", target="x", decision="b")
    assert log.undo_last("t", "ann") is None  # ann's decision no longer shows: bob's does
    assert log.state("t")["x"].decision == "b"
    log.undo(a.id, reviewer="ann")
    with pytest.raises(InputError, match="already undone"):
        log.undo(a.id, reviewer="ann")


def test_a_key_names_one_decision(log):
    log.append(reviewer="ann", task="t", target="x", decision="a", key="k")
    with pytest.raises(InputError, match="already names another decision"):
        log.append(reviewer="ann", task="t", target="y", decision="a", key="k")
    with pytest.raises(InputError, match="already names another decision"):
        log.append(reviewer="ann", task="t", target="x", decision="b", key="k")


# --- issue 18.9: an idempotency key means something only within its (task, reviewer) ----------------------
def test_a_key_is_scoped_to_its_task_and_reviewer(log):
    mine = log.append(reviewer="ann", task="t", target="x", decision="a", key="k")
    # another reviewer reusing ann's key stores their own decision, and never gets ann's event back
    bobs = log.append(reviewer="bob", task="t", target="y", decision="b", key="k")
    assert bobs.id != mine.id and (bobs.reviewer, bobs.target, bobs.decision) == ("bob", "y", "b")
    # the same key in another task is another decision
    other = log.append(reviewer="ann", task="u", target="x", decision="a", key="k")
    assert other.id not in (mine.id, bobs.id) and other.task == "u"
    assert {k: e.decision for k, e in log.state("t").items()} == {"x": "a", "y": "b"}
    # and a retry inside each scope still returns that scope's event
    assert log.append(reviewer="bob", task="t", target="y", decision="b", key="k").id == bobs.id
    assert log.append(reviewer="ann", task="u", target="x", decision="a", key="k").id == other.id


def test_an_undo_never_returns_an_event_of_another_task_or_a_decision(log):
    log.append(reviewer="ann", task="t", target="x", decision="a")
    undone_u = log.append(reviewer="ann", task="u", target="z", decision="a")
    first = log.undo_last("u", "ann", key="undo-1")
    assert first.supersedes == undone_u.id
    # the same key in task t undoes ann's decision in t (not an answer from task u)
    in_t = log.undo_last("t", "ann", key="undo-1")
    assert in_t.task == "t" and in_t.id != first.id and set(log.state("t")) == set()
    # an undo that reuses the key of a decision is refused, not answered with that decision
    log.append(reviewer="ann", task="t", target="y", decision="a", key="dec-1")
    with pytest.raises(InputError, match="names a decision"):
        log.undo_last("t", "ann", key="dec-1")
    assert set(log.state("t")) == {"y"}


def test_a_version_1_log_keeps_its_events_and_gets_scoped_keys(tmp_path):
    path = tmp_path / "old.sqlite"
    con = sqlite3.connect(path)
    con.executescript("""
        CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT, time TEXT NOT NULL, reviewer TEXT NOT NULL,
            task TEXT NOT NULL, target TEXT NOT NULL, decision TEXT NOT NULL, reason TEXT, crop TEXT, note TEXT,
            supersedes INTEGER REFERENCES events(id), key TEXT UNIQUE);
        INSERT INTO events (time, reviewer, task, target, decision, key) VALUES ('t0', 'ann', 't', 'x', 'a', 'k');
        INSERT INTO events (time, reviewer, task, target, decision, supersedes)
            VALUES ('t1', 'ann', 't', 'x', 'undo', 1);
    """)
    con.close()
    with ReviewLog(path) as lg:
        assert [(e.id, e.decision, e.key) for e in lg.events()] == [(1, "a", "k"), (2, UNDO, None)]
        bob = lg.append(reviewer="bob", task="t", target="x", decision="b", key="k")  # v1 refused this
        assert bob.id == 3 and lg.append(reviewer="ann", task="t", target="x", decision="a", key="k").id == 1
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            lg._con().execute("DELETE FROM events")
    with ReviewLog(path) as lg:  # opening again changes nothing
        assert lg._con().execute("PRAGMA user_version").fetchone()[0] == 2 and lg.count() == 3


# --- issue 18.1: stored exactly as sent --------------------------------------------------------------------
@pytest.mark.parametrize("target", [" a.png", "a.png ", "\ta.png", "a.png\n", "\u00a0a.png", "a.png\u2003"])
def test_targets_are_stored_exactly_as_given(log, target):
    e = log.append(reviewer="ann", task="t", target=target, decision="a")
    log.append(reviewer="ann", task="t", target="a.png", decision="b")
    assert e.target == target and log.event(e.id).target == target
    assert {k: v.decision for k, v in log.state("t").items()} == {target: "a", "a.png": "b"}


@pytest.mark.parametrize("field", ["reviewer", "task", "target", "decision"])
@pytest.mark.parametrize("blank", ["", " ", "\t\n", "\u00a0"])
def test_blank_names_are_refused(log, field, blank):
    d = dict(reviewer="ann", task="t", target="x", decision="a")
    d[field] = blank
    with pytest.raises(InputError, match=f"non-empty {field}"):
        log.append(**d)
    assert log.count() == 0


# --- issue 18.7 and 18.10: limits and text SQLite can store ---------------------------------------------------
@pytest.mark.parametrize("field", ["reviewer", "task", "target", "decision", "reason", "note", "key"])
def test_every_text_field_has_a_limit_and_must_be_storable(log, field):
    from shiftlab.review.log import LIMITS

    d = dict(reviewer="ann", task="t", target="x", decision="a")
    for bad, why in [("y" * (LIMITS[field] + 1), "too long"), ("a\ud800b", "lone surrogate")]:
        with pytest.raises(InputError, match=why):
            log.append(**{**d, field: bad})
    d[field] = "y" * LIMITS[field]  # at the limit: stored
    assert getattr(log.append(**d), field) == "y" * LIMITS[field]
    assert log.count() == 1


@pytest.mark.parametrize("bad", [0, -1, 2**63, 10**30, 1.5, True, "x", None])
def test_event_ids_out_of_range_are_input_errors(log, bad):
    with pytest.raises(InputError, match="event id"):
        log.event(bad)
    with pytest.raises(InputError, match="event id"):
        log.undo(bad, reviewer="ann")
