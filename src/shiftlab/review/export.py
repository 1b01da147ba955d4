"""Exports of the decision log: every event (JSONL, Parquet), or one task's decisions in the shape the next
step of the process reads (``dedup --reviews`` CSV, an MTurk results CSV for ``hits import``, a blacklist)."""

from __future__ import annotations

import os
from pathlib import Path

from shiftlab.errors import InputError
from shiftlab.fsutil import atomic_write_bytes, atomic_write_json
from shiftlab.review import tasks as tk
from shiftlab.review.log import open_log

#: export format → the task kind it needs (None: any task, or the whole log)
EXPORT_FORMATS = {"jsonl": None, "parquet": None, "reviews": "duplicates", "mturk": "labelling",
                  "blacklist": "classes"}


def export_decisions(out_path: str | os.PathLike, fmt: str = "jsonl", *, task: str | None = None,
                     workspace=None) -> int:
    """Write the workspace's decision log, or task ``task``'s decisions, to ``out_path``; returns the number of
    events (jsonl, parquet) or rows (reviews, mturk, blacklist entries) written.

    fmt: ``jsonl`` | ``parquet`` (events, of ``task`` or of the whole log); ``reviews`` (a duplicates task:
    ``query,reference,is_duplicate,reviewer``); ``mturk`` (a labelling task: a results CSV); ``blacklist``
    (a classes task: JSON id → reason). Checked before anything is written; the file is replaced atomically.
    """
    out_path = Path(out_path)
    if fmt not in EXPORT_FORMATS:
        raise InputError(f"export format {fmt!r}: one of {', '.join(EXPORT_FORMATS)}")
    if not out_path.parent.is_dir():
        raise InputError(f"{out_path}: no folder {out_path.parent}")
    t = tk.load_task(task, workspace) if task else None
    need = EXPORT_FORMATS[fmt]
    if need and (t is None or t["kind"] != need):
        raise InputError(f"format {fmt} exports a {need} task: give the name of one (--task)")
    log = open_log(tk.log_path(workspace))
    try:
        if fmt == "jsonl":
            log.export_jsonl(out_path, task)
            return log.count(task)
        if fmt == "parquet":
            log.export_parquet(out_path, task)
            return log.count(task)
        if fmt in ("reviews", "mturk"):
            df = tk.duplicate_reviews(log, t) if fmt == "reviews" else tk.labelling_results(log, t)
            atomic_write_bytes(out_path, df.to_csv(index=False, lineterminator="\n").encode())
            return len(df)
        bl = tk.blacklist(log, task)
        atomic_write_json(out_path, bl)
        return len(bl)
    finally:
        log.close()


def task_decisions(task: str, workspace=None) -> dict:
    """The folded state of a task's decisions (image or pair id → the event in force)."""
    tk.load_task(task, workspace)  # a clear error for a task that does not exist
    log = open_log(tk.log_path(workspace))
    try:
        return log.state(task)
    finally:
        log.close()
