"""Small file-system primitives: atomic writes, inter-process locks and a strict JSON reader.

Everything shiftlab stores is written to a temporary name in the same folder and renamed into place, so a
reader (or a process killed half-way) never sees half a file. JSON a user hands in is read by ``read_json``,
which turns every way it can be wrong into one ``InputError`` line.
"""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from shiftlab.errors import InputError

_UMASK = os.umask(0)
os.umask(_UMASK)


def _tmp_beside(path: Path) -> Path:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; the renamed file should read like any other
    return Path(tmp)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: a temporary file in the same folder, renamed into place."""
    path = Path(path)
    tmp = _tmp_beside(path)
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_json(path: str | os.PathLike, obj) -> None:
    """Write ``obj`` as JSON (indent 1, sorted keys, ``str`` for other types) atomically."""
    atomic_write_bytes(path, json.dumps(obj, indent=1, sort_keys=True, default=str).encode())


def atomic_save_npz(path: str | os.PathLike, **arrays: np.ndarray) -> None:
    """Save ``arrays`` (name → array) as an uncompressed ``.npz`` at ``path`` atomically."""
    path = Path(path)
    tmp = _tmp_beside(path)
    try:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_save_npy(path: str | os.PathLike, array: np.ndarray) -> None:
    """Save one array as ``.npy`` at ``path`` atomically."""
    path = Path(path)
    tmp = _tmp_beside(path)
    try:
        with open(tmp, "wb") as f:
            np.save(f, array)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def file_lock(path: str | os.PathLike):
    """An exclusive lock between processes (flock: released by the OS if the holder dies)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def _no_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def parse_json(text: str | bytes, where: str, *, allow_nan: bool = False):
    """``text`` parsed as JSON; ``InputError`` naming ``where`` when it is not JSON, is nested too deeply to
    parse (Python's parser recurses), or holds ``NaN`` / ``Infinity`` (not JSON, and no count or class index
    means them) unless ``allow_nan``."""
    try:
        return json.loads(text, parse_constant=None if allow_nan else _no_constant)
    except RecursionError:
        raise InputError(f"{where}: JSON nested too deeply to read") from None
    except (ValueError, UnicodeDecodeError) as e:  # JSONDecodeError is a ValueError
        raise InputError(f"{where}: not valid JSON ({' '.join(str(e).split())[:200]})") from None


def read_json(path: str | os.PathLike, *, what: str | None = None, allow_nan: bool = False):
    """The JSON file at ``path`` (UTF-8), parsed as ``parse_json`` does; ``InputError`` when it cannot be read.
    ``what`` (e.g. "not an ImageNetV2 revision file") follows the path in every error."""
    p = Path(path)
    where = f"{p}: {what}" if what else str(p)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{where}: no such file") from None
    except OSError as e:
        raise InputError(f"{where}: cannot read it ({e.strerror or e})") from None
    return parse_json(data, where, allow_nan=allow_nan)


def backup_file(path: str | os.PathLike) -> Path | None:
    """Keep the file at ``path`` as ``<name>.<UTC time>.bak`` beside it before it is replaced; returns the backup
    (None when there is no file). A hard link where the file system allows (instant, no copy), else a copy;
    the ``.bak`` suffix keeps it out of every ``*.json`` / ``*.parquet`` listing."""
    import shutil
    from datetime import datetime, timezone

    p = Path(path)
    if not p.is_file():
        return None
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    dest, n = p.with_name(f"{p.name}.{stamp}.bak"), 1
    while dest.exists():  # two replacements within one second
        dest, n = p.with_name(f"{p.name}.{stamp}-{n}.bak"), n + 1
    try:
        os.link(p, dest)
    except OSError:
        shutil.copy2(p, dest)
    return dest


def replace_bytes(path: str | os.PathLike, data: bytes) -> Path | None:
    """Write ``data`` to ``path`` atomically, keeping a different existing file as a dated backup first
    (``backup_file``); returns the backup, or None when nothing was there or its bytes were the same."""
    p = Path(path)
    kept = None
    if p.is_file() and p.read_bytes() != data:
        kept = backup_file(p)
    atomic_write_bytes(p, data)
    return kept
