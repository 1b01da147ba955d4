"""Drawn figures kept on disk by content, so that a report rebuilt from the same data draws nothing again.

Drawing is most of what a rerun of ``shiftlab demo`` costs once every result is cached: matplotlib rasterises
each figure twice (tight bounding box) at 150 dpi. A figure handed to ``Section.figure`` as
``FigureCall(fn, *args, **kwargs)`` is drawn only when the active cache (``figure_cache(folder)``) has no PNG for
its key: the source files of ``fn``'s module and of the shared style, the dpi, and a digest of every argument's
content (DataFrames by their values, index and dtypes; arrays by their bytes; files by path, size and mtime).
Without an active cache, or with an argument that has no content digest, the figure is simply drawn.
"""

from __future__ import annotations

import hashlib
import inspect
import sys
from collections.abc import Callable, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import fields, is_dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from shiftlab.fsutil import atomic_write_bytes

_CACHE: ContextVar[Path | None] = ContextVar("shiftlab_figure_cache", default=None)


@contextmanager
def figure_cache(folder: str | Path):
    """Within the block, ``FigureCall`` figures are looked up in and saved to ``folder``."""
    token = _CACHE.set(Path(folder))
    try:
        yield
    finally:
        _CACHE.reset(token)


class NoDigest(Exception):
    """An argument whose content cannot be digested: the figure is drawn, not cached."""


def _feed(h, obj) -> None:
    """Add ``obj``'s content to the hash ``h``; NoDigest for objects without a content we can name."""
    if obj is None or isinstance(obj, (bool, int, float, str, bytes)):
        h.update(f"{type(obj).__name__}:{obj!r};".encode())
    elif isinstance(obj, Path):
        st = obj.stat() if obj.exists() else None
        h.update(f"path:{obj}:{st and (st.st_size, st.st_mtime_ns)};".encode())
    elif isinstance(obj, pd.DataFrame):
        h.update(f"df:{list(map(str, obj.columns))}:{list(map(str, obj.dtypes))}:{obj.shape};".encode())
        h.update(pd.util.hash_pandas_object(obj, index=True).to_numpy().tobytes())
    elif isinstance(obj, pd.Series):
        h.update(f"series:{obj.name}:{obj.dtype}:{obj.shape};".encode())
        h.update(pd.util.hash_pandas_object(obj, index=True).to_numpy().tobytes())
    elif isinstance(obj, np.ndarray):
        h.update(f"array:{obj.dtype}:{obj.shape};".encode())
        h.update(np.ascontiguousarray(obj).tobytes())
    elif isinstance(obj, np.generic):
        _feed(h, obj.item())
    elif isinstance(obj, Mapping):
        h.update(f"map:{len(obj)}(".encode())
        for k in sorted(obj, key=repr):
            _feed(h, k)
            _feed(h, obj[k])
        h.update(b")")
    elif isinstance(obj, (list, tuple)):
        h.update(f"seq:{len(obj)}(".encode())
        for x in obj:
            _feed(h, x)
        h.update(b")")
    elif is_dataclass(obj) and not isinstance(obj, type):
        h.update(f"dc:{type(obj).__qualname__}(".encode())
        for f in fields(obj):
            _feed(h, f.name)
            _feed(h, getattr(obj, f.name))
        h.update(b")")
    else:
        raise NoDigest(type(obj).__qualname__)


def _source_digest(fn: Callable) -> str:
    """The bytes of the files that draw: ``fn``'s module and the figures' shared style."""
    h = hashlib.sha256()
    for mod in (sys.modules.get(fn.__module__), sys.modules.get("shiftlab.report.figures.style")):
        path = inspect.getsourcefile(mod) if mod is not None else None
        h.update(Path(path).read_bytes() if path else repr(mod).encode())
    return h.hexdigest()


class FigureCall:
    """``fn(*args, **kwargs)``, a matplotlib Figure not drawn yet (module docstring)."""

    __slots__ = ("args", "fn", "kwargs")

    def __init__(self, fn: Callable, *args, **kwargs):
        self.fn, self.args, self.kwargs = fn, args, kwargs

    def key(self, dpi: int) -> str | None:
        """The content key of the drawn PNG, or None when an argument has no digest."""
        h = hashlib.sha256(f"{self.fn.__module__}.{self.fn.__qualname__}:{dpi};".encode())
        h.update(_source_digest(self.fn).encode())
        try:
            _feed(h, list(self.args))
            _feed(h, self.kwargs)
        except NoDigest:
            return None
        return h.hexdigest()

    def png(self, dpi: int, draw: Callable) -> bytes:
        """The PNG: from the active cache, or ``draw(figure)`` of a freshly made figure (then kept)."""
        folder = _CACHE.get()
        key = self.key(dpi) if folder is not None else None
        path = folder / f"{key[:32]}.png" if key else None
        if path is not None and path.is_file():
            return path.read_bytes()
        data = draw(self.fn(*self.args, **self.kwargs))
        if path is not None:
            atomic_write_bytes(path, data)
        return data
