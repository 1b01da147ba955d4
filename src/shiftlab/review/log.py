"""The ReviewLog: an append-only SQLite event log of human decisions (DESIGN "ReviewLog").

Every decision a reviewer makes — in the web app, from a CSV import or from a notebook — is one event
``(id, time UTC, reviewer, task, target, decision, reason, crop box, note, supersedes)``. Nothing is updated
in place: the current state of a target is a fold over its events (the latest decision that has not been
undone), and undo is itself an event (decision ``"undo"``, ``supersedes`` = the undone event's id). The
builders of the other modules read the folded state through one function, :func:`read_decisions`.

SQLite runs in WAL mode with ``synchronous=FULL``: once :meth:`ReviewLog.append` returns, the event is on
disk and survives a killed process (and a power cut). Concurrent writers (several app workers, a CLI
import) serialise on ``BEGIN IMMEDIATE`` with a busy timeout. An optional client ``key`` makes an append
idempotent, so a client that retries after a lost reply never stores a decision twice. A key is scoped to
its (task, reviewer): one reviewer's key never finds another reviewer's event, nor one of another task.

Text is stored exactly as given (a target ``" a.png"`` is not ``"a.png"``), and every text field has a
length limit (``LIMITS``): the log is read back on every page load.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from shiftlab.errors import InputError
from shiftlab.fsutil import atomic_write_bytes

UNDO = "undo"
EVENT_COLUMNS = ["id", "time", "reviewer", "task", "target", "decision", "reason", "crop", "note",
                 "supersedes", "key"]
_COLS = ",".join(EVENT_COLUMNS)
STATE_COLUMNS = ["target", "decision", "reason", "crop", "note", "reviewer", "time", "event_id"]

#: the most characters each text field may hold (a note carries a HIT page's answers; the rest are short)
LIMITS = {"reviewer": 100, "task": 200, "target": 1000, "decision": 100, "reason": 500, "note": 20_000,
          "key": 200}
#: the largest event id SQLite can hold (a signed 64-bit integer)
MAX_EVENT_ID = 2**63 - 1
#: PRAGMA user_version of the current schema: 2 = keys unique per (task, reviewer), not across the log
SCHEMA_VERSION = 2

_TABLE = """CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time TEXT NOT NULL,
    reviewer TEXT NOT NULL,
    task TEXT NOT NULL,
    target TEXT NOT NULL,
    decision TEXT NOT NULL,
    reason TEXT,
    crop TEXT,
    note TEXT,
    supersedes INTEGER REFERENCES events(id),
    key TEXT
)"""
_SCHEMA = (
    _TABLE,
    "CREATE INDEX IF NOT EXISTS events_task_target ON events(task, target)",
    "CREATE UNIQUE INDEX IF NOT EXISTS events_scoped_key ON events(task, reviewer, key)",
    """CREATE TRIGGER IF NOT EXISTS events_append_only_update BEFORE UPDATE ON events
    BEGIN SELECT RAISE(ABORT, 'the review log is append-only'); END""",
    """CREATE TRIGGER IF NOT EXISTS events_append_only_delete BEFORE DELETE ON events
    BEGIN SELECT RAISE(ABORT, 'the review log is append-only'); END""",
)


@dataclass(frozen=True)
class Event:
    """One stored decision. ``crop`` is ``(x0, y0, x1, y1)`` in original-image pixels, or None."""

    id: int
    time: str
    reviewer: str
    task: str
    target: str
    decision: str
    reason: str | None = None
    crop: tuple[int, int, int, int] | None = None
    note: str | None = None
    supersedes: int | None = None
    key: str | None = None

    def to_json(self) -> dict:
        """The fields as a JSON-ready dict (``crop`` as a list, or None)."""
        d = asdict(self)
        d["crop"] = list(self.crop) if self.crop else None
        return d


def utc_now() -> str:
    """The current UTC time as ISO 8601 text with microseconds and a ``Z`` suffix."""
    return datetime.now(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def check_crop(crop) -> tuple[int, int, int, int] | None:
    """A crop box as four non-negative integers x0 < x1, y0 < y1 (original-image pixels), or None."""
    if crop is None:
        return None
    try:
        x0, y0, x1, y1 = (int(round(float(v))) for v in crop)
    except (TypeError, ValueError, OverflowError):  # OverflowError: ±Infinity, which JSON bodies can carry
        raise InputError(f"crop box {crop!r}: give four finite numbers x0,y0,x1,y1") from None
    if min(x0, y0) < 0 or x1 <= x0 or y1 <= y0:
        raise InputError(f"crop box {crop!r}: need 0 <= x0 < x1 and 0 <= y0 < y1 (pixels)")
    return x0, y0, x1, y1


def check_text(field: str, value: str | None) -> None:
    """``InputError`` unless ``value`` (None passes) is at most ``LIMITS[field]`` characters of storable text: SQLite
    stores UTF-8, which a lone surrogate (JSON can carry ``"\\ud800"``) cannot be written in."""
    if value is None:
        return
    if len(value) > LIMITS[field]:
        raise InputError(f"{field} is too long ({len(value):,} characters; at most {LIMITS[field]:,})")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InputError(f"{field} is not valid text (it holds a lone surrogate)") from None


def check_event_id(value, what: str = "event id") -> int:
    """``value`` as an event id (1 … ``MAX_EVENT_ID``); ``InputError`` otherwise (SQLite overflows above it)."""
    try:
        i = int(value)
    except (TypeError, ValueError, OverflowError):
        raise InputError(f"{what} {value!r} is not an event id") from None
    if isinstance(value, bool) or not 1 <= i <= MAX_EVENT_ID or (isinstance(value, float) and value != i):
        raise InputError(f"{what} {value!r} is not an event id (1 to {MAX_EVENT_ID})")
    return i


def _row_event(r) -> Event:
    crop = tuple(json.loads(r[7])) if r[7] else None
    return Event(int(r[0]), r[1], r[2], r[3], r[4], r[5], r[6], crop, r[8], r[9], r[10])


class ReviewLog:
    """An append-only decision log in one SQLite file (created on first use).

    Thread-safe: each thread gets its own connection. Use as a context manager or call :meth:`close`.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._migrate(self._con())

    @staticmethod
    def _migrate(con: sqlite3.Connection) -> None:
        """Create the schema, or bring a version-1 log (keys unique across the whole log) to version 2.

        Version 1 declared ``key TEXT UNIQUE``, a constraint SQLite cannot drop in place: the events are copied,
        ids and all, into a table without it, in one transaction (the append-only triggers guard UPDATE and
        DELETE, which this never does)."""
        try:
            con.execute("BEGIN IMMEDIATE")
        except sqlite3.DatabaseError as e:
            raise InputError(f"not a review log ({e})") from None
        try:
            version = con.execute("PRAGMA user_version").fetchone()[0]
            old = con.execute("SELECT sql FROM sqlite_master WHERE type='table' AND name='events'").fetchone()
            if version < SCHEMA_VERSION and old is not None and "key TEXT UNIQUE" in old[0]:
                con.execute("DROP TRIGGER IF EXISTS events_append_only_update")
                con.execute("DROP TRIGGER IF EXISTS events_append_only_delete")
                con.execute("ALTER TABLE events RENAME TO events_v1")
                con.execute(_TABLE)
                con.execute(f"INSERT INTO events ({_COLS}) SELECT {_COLS} FROM events_v1")
                con.execute("DROP TABLE events_v1")
            for stmt in _SCHEMA:
                con.execute(stmt)
            con.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise

    # --- connections --------------------------------------------------------------------------------
    def _con(self) -> sqlite3.Connection:
        con = getattr(self._local, "con", None)
        if con is None:
            try:
                con = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
                con.execute("PRAGMA journal_mode=WAL")
                con.execute("PRAGMA synchronous=FULL")  # an acknowledged decision is on disk
            except sqlite3.DatabaseError as e:
                raise InputError(f"{self.path}: not a review log ({e})") from None
            self._local.con = con
            with self._lock:
                self._all.append(con)
        return con

    def close(self) -> None:
        """Close the SQLite connections of every thread that used the log."""
        with self._lock:
            for con in self._all:
                try:
                    con.close()
                except sqlite3.ProgrammingError:
                    pass
            self._all.clear()
        self._local = threading.local()

    def __enter__(self) -> ReviewLog:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- writing ------------------------------------------------------------------------------------
    def append(self, *, reviewer: str, task: str, target: str, decision: str, reason: str | None = None,
               crop=None, note: str | None = None, supersedes: int | None = None, key: str | None = None) -> Event:
        """Store one decision and return it (with its id). Retrying with the same ``key`` (same task and
        reviewer) returns the first stored event instead of adding a second one."""
        return self.append_many([dict(reviewer=reviewer, task=task, target=target, decision=decision,
                                      reason=reason, crop=crop, note=note, supersedes=supersedes, key=key)])[0]

    def append_many(self, decisions: Sequence[Mapping]) -> list[Event]:
        """Store several decisions in one transaction (one disk flush); all or none are stored."""
        rows = [self._validate(d) for d in decisions]
        con = self._con()
        out: list[Event] = []
        con.execute("BEGIN IMMEDIATE")
        try:
            for r in rows:
                out.append(self._store(con, r))
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        return out

    @staticmethod
    def _stored_under(con, task: str, reviewer: str, key: str | None) -> Event | None:
        """The event stored under ``key`` by ``reviewer`` in ``task`` (a key means nothing outside that scope)."""
        if not key:
            return None
        row = con.execute(f"SELECT {_COLS} FROM events WHERE task=? AND reviewer=? AND key=?",
                          (task, reviewer, key)).fetchone()
        return _row_event(row) if row is not None else None

    def _store(self, con, r: dict) -> Event:
        """Insert one validated decision inside the caller's transaction (a retried key returns the event
        stored under it)."""
        prev = self._stored_under(con, r["task"], r["reviewer"], r["key"])
        if prev is not None:
            if (prev.target, prev.decision, prev.supersedes) != (r["target"], r["decision"], r["supersedes"]):
                raise InputError(f"key {r['key']!r} already names another decision (event {prev.id})")
            return prev  # a retry: the first one stands
        if r["supersedes"] is not None:
            if con.execute("SELECT 1 FROM events WHERE id=? AND task=?",
                           (r["supersedes"], r["task"])).fetchone() is None:
                raise InputError(f"event {r['supersedes']} does not exist in task {r['task']!r}")
            if r["decision"] == UNDO and con.execute(
                    "SELECT 1 FROM events WHERE decision=? AND supersedes=?",
                    (UNDO, r["supersedes"])).fetchone() is not None:
                raise InputError(f"event {r['supersedes']} is already undone")
        cur = con.execute(
            "INSERT INTO events (time, reviewer, task, target, decision, reason, crop, note, supersedes, key)"
            " VALUES (?,?,?,?,?,?,?,?,?,?)",
            (r["time"], r["reviewer"], r["task"], r["target"], r["decision"], r["reason"],
             json.dumps(list(r["crop"])) if r["crop"] else None, r["note"], r["supersedes"], r["key"]))
        return Event(cur.lastrowid, r["time"], r["reviewer"], r["task"], r["target"], r["decision"],
                     r["reason"], r["crop"], r["note"], r["supersedes"], r["key"])

    @staticmethod
    def _validate(d: Mapping) -> dict:
        r = {k: d.get(k) for k in ("reviewer", "task", "target", "decision", "reason", "note", "supersedes", "key")}
        for k in ("reviewer", "task", "target", "decision", "reason", "note", "key"):
            v = r[k]
            if v is None and k in ("reason", "note", "key"):
                continue
            if not isinstance(v, str):
                raise InputError(f"{k} must be text")
            # stored exactly as given: stripping here once stored a decision on " a.png" against "a.png"
            if k in ("reviewer", "task", "target", "decision") and not v.strip():
                raise InputError(f"a decision needs a non-empty {k}")
            check_text(k, v)
        if r["supersedes"] is not None:
            r["supersedes"] = check_event_id(r["supersedes"], "supersedes")
        if r["decision"] == UNDO and r["supersedes"] is None:
            raise InputError("an undo event must name the event it undoes (supersedes)")
        r["crop"] = check_crop(d.get("crop"))
        r["time"] = utc_now()
        return r

    def undo(self, event_id: int, *, reviewer: str, key: str | None = None) -> Event:
        """Undo one decision: a new event; the target's state falls back to its previous decision."""
        e = self.event(event_id)
        if e.decision == UNDO:
            raise InputError(f"event {event_id} is itself an undo; make a new decision instead")
        return self.append(reviewer=reviewer, task=e.task, target=e.target, decision=UNDO, supersedes=e.id, key=key)

    def undo_last(self, task: str, reviewer: str, *, key: str | None = None) -> Event | None:
        """Undo this reviewer's latest decision in ``task`` that is still in force — the decision its target
        currently shows (None when there is none). Decisions another reviewer has since replaced are left
        alone. Chosen and undone in one transaction, so two tabs pressing undo at once undo two decisions."""
        check_text("key", key)
        con = self._con()
        con.execute("BEGIN IMMEDIATE")
        try:
            out = self._stored_under(con, task, reviewer, key)  # a retried undo: the first one stands
            if out is not None and out.decision != UNDO:
                raise InputError(f"key {key!r} already names a decision (event {out.id}), not an undo")
            if out is None:
                rows = con.execute(f"SELECT {_COLS} FROM events WHERE task=? ORDER BY id", (task,)).fetchall()
                mine = [e for e in fold(_row_event(r) for r in rows).values() if e.reviewer == reviewer]
                if mine:
                    e = max(mine, key=lambda x: x.id)
                    out = self._store(con, self._validate(dict(reviewer=reviewer, task=task, target=e.target,
                                                               decision=UNDO, supersedes=e.id, key=key)))
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        return out

    # --- reading ------------------------------------------------------------------------------------
    def event(self, event_id: int) -> Event:
        """The event with id ``event_id``; ``InputError`` when there is none."""
        event_id = check_event_id(event_id)
        r = self._con().execute(f"SELECT {_COLS} FROM events WHERE id=?", (event_id,)).fetchone()
        if r is None:
            raise InputError(f"no event {event_id} in {self.path}")
        return _row_event(r)

    def events(self, task: str | None = None) -> list[Event]:
        """All events (of one task), oldest first."""
        sql = f"SELECT {_COLS} FROM events"
        args: tuple = ()
        if task is not None:
            sql, args = sql + " WHERE task=?", (task,)
        return [_row_event(r) for r in self._con().execute(sql + " ORDER BY id", args)]

    def count(self, task: str | None = None) -> int:
        """The number of events (of one task, or of all when ``task`` is None)."""
        if task is None:
            return self._con().execute("SELECT COUNT(*) FROM events").fetchone()[0]
        return self._con().execute("SELECT COUNT(*) FROM events WHERE task=?", (task,)).fetchone()[0]

    def tasks(self) -> list[str]:
        """The names of the tasks that have events, sorted."""
        return [r[0] for r in self._con().execute("SELECT DISTINCT task FROM events ORDER BY task")]

    def state(self, task: str) -> dict[str, Event]:
        """The folded state of a task: target → the decision in force."""
        return fold(self.events(task))

    # --- export -------------------------------------------------------------------------------------
    def to_frame(self, task: str | None = None) -> pd.DataFrame:
        """The events (of one task) as a DataFrame, oldest first: ``EVENT_COLUMNS``, ``crop`` as a list or None,
        ``supersedes`` as nullable ``Int64``.
        """
        rows = [e.to_json() for e in self.events(task)]
        df = pd.DataFrame(rows, columns=EVENT_COLUMNS)
        return df.astype({"id": "int64"}).assign(supersedes=df["supersedes"].astype("Int64"))

    def export_jsonl(self, path: str | os.PathLike, task: str | None = None) -> Path:
        """Write the events (of one task) to ``path`` as JSON lines, oldest first, atomically; returns the path."""
        text = "".join(json.dumps(e.to_json(), sort_keys=True) + "\n" for e in self.events(task))
        atomic_write_bytes(Path(path), text.encode())
        return Path(path)

    def export_parquet(self, path: str | os.PathLike, task: str | None = None) -> Path:
        """Write ``to_frame(task)`` to ``path`` as Parquet, atomically; returns the path."""
        import io


        buf = io.BytesIO()
        self.to_frame(task).to_parquet(buf, index=False)
        atomic_write_bytes(Path(path), buf.getvalue())
        return Path(path)


def fold(events: Iterable[Event]) -> dict[str, Event]:
    """Target → its decision in force: the latest non-undo event not undone by a later event.

    Undoing a decision restores the one before it (if that one is still in force)."""
    events = sorted(events, key=lambda e: e.id)
    undone = {e.supersedes for e in events if e.decision == UNDO}
    state: dict[str, Event] = {}
    for e in events:
        if e.decision != UNDO and e.id not in undone:
            state[e.target] = e
    return state


def open_log(path_or_log) -> ReviewLog:
    """A ReviewLog as given, or the one at a path; ``InputError`` when the file does not exist (it is never created
    here).
    """
    if isinstance(path_or_log, ReviewLog):
        return path_or_log
    p = Path(path_or_log)
    if not p.is_file():
        raise InputError(f"{p}: no review log here (the app creates it on the first decision)")
    return ReviewLog(p)


def read_decisions(log, task: str) -> pd.DataFrame:
    """The decisions in force for ``task`` (the one function builders read): one row per target with
    ``STATE_COLUMNS``; ``crop`` is a 4-tuple or None. ``log`` is a ReviewLog or the path of one."""
    lg = open_log(log)
    try:
        st = lg.state(task)
    finally:
        if lg is not log:
            lg.close()
    rows = [(e.target, e.decision, e.reason, e.crop, e.note, e.reviewer, e.time, e.id) for e in st.values()]
    return pd.DataFrame(rows, columns=STATE_COLUMNS).sort_values("event_id").reset_index(drop=True)
