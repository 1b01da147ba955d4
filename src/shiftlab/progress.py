"""Progress bars (rich) for anything that takes more than a couple of seconds; ``--quiet`` silences them."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

T = TypeVar("T")
_state = {"quiet": bool(os.environ.get("SHIFTLAB_QUIET"))}
#: progress and messages go to stderr so that tables on stdout can be piped
console = Console(stderr=True)


def set_quiet(quiet: bool) -> None:
    """Silence (True) or allow (False) every progress bar and message of this process (``--quiet``)."""
    _state["quiet"] = quiet


def is_quiet() -> bool:
    """Whether bars and messages are silenced (``set_quiet``; initially set by ``$SHIFTLAB_QUIET``)."""
    return _state["quiet"]


def _progress() -> Progress:
    return Progress(TextColumn("[progress.description]{task.description}"), BarColumn(),
                    MofNCompleteColumn(), TaskProgressColumn(), TimeElapsedColumn(), TimeRemainingColumn(),
                    console=console, transient=not sys.stderr.isatty())


def track(it: Iterable[T], total: int | None = None, description: str = "", disable: bool = False) -> Iterator[T]:
    """Yield the items of ``it`` while a bar on stderr counts them (of ``total``, when known); a plain pass-through
    when ``disable`` or quiet.
    """
    if disable or is_quiet():
        yield from it
        return
    with _progress() as p:
        task = p.add_task(description, total=total)
        for x in it:
            yield x
            p.advance(task)


class _Bar:
    def __init__(self, progress: Progress | None, task):
        self._p, self._t = progress, task

    def advance(self, n: int = 1) -> None:
        """Count ``n`` more steps done (default 1); does nothing when the bar is disabled."""
        if self._p is not None:
            self._p.advance(self._t, n)


@contextmanager
def bar(description: str, total: int | None, disable: bool = False):
    """``with bar("decoding", n) as b: ... b.advance(k)``"""
    if disable or is_quiet():
        yield _Bar(None, None)
        return
    with _progress() as p:
        yield _Bar(p, p.add_task(description, total=total))


@contextmanager
def bars(disable: bool = False):
    """Several bars in one live display (rich allows one at a time): ``with bars() as new:``, then
    ``b = new("model on set", n)`` and ``b.advance(k)``; every bar is disabled when ``disable`` or quiet."""
    if disable or is_quiet():
        yield lambda description, total: _Bar(None, None)
        return
    with _progress() as p:
        yield lambda description, total: _Bar(p, p.add_task(description, total=total))


def info(msg: str) -> None:
    """Print a message on stderr, unless quiet."""
    if not is_quiet():
        console.print(msg)


_IMPORTED = time.perf_counter()


def seconds_since_start() -> float:
    """Wall-clock seconds since this process started, interpreter and imports included (what ``time`` would
    print); where ``/proc`` is missing, since this module was imported."""
    try:
        after_name = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        started = int(after_name[19]) / os.sysconf("SC_CLK_TCK")  # field 22, starttime, in ticks since boot
        return float(Path("/proc/uptime").read_text().split()[0]) - started
    except (OSError, ValueError, IndexError):
        return time.perf_counter() - _IMPORTED
