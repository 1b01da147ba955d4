"""fsutil: atomic writes (whole file or the old one, never half; no temp files left; the umask's mode)
and file_lock (exclusive between processes, released when the holder dies)."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from shiftlab import fsutil
from shiftlab.fsutil import atomic_save_npy, atomic_save_npz, atomic_write_bytes, atomic_write_json, file_lock

WRITERS = {
    "bytes": lambda p: atomic_write_bytes(p, b"new content"),
    "json": lambda p: atomic_write_json(p, {"new": 1}),
    "npy": lambda p: atomic_save_npy(p, np.arange(5)),
    "npz": lambda p: atomic_save_npz(p, a=np.arange(5)),
}


def _wait_for(cond, timeout: float = 4.0) -> bool:
    t = time.monotonic()
    while not cond():
        if time.monotonic() - t > timeout:
            return False
        time.sleep(0.01)
    return True


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


# --- atomic writes ----------------------------------------------------------------------------------


def test_atomic_write_bytes_exact_content_and_no_temp_left(tmp_path):
    """The file holds exactly the bytes given (str paths work too), and the folder holds nothing else."""
    data = bytes(range(256)) * 3
    atomic_write_bytes(tmp_path / "a.bin", data)
    atomic_write_bytes(str(tmp_path / "b.bin"), b"")
    assert (tmp_path / "a.bin").read_bytes() == data
    assert (tmp_path / "b.bin").read_bytes() == b""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin", "b.bin"]


def test_atomic_write_json_round_trips_and_is_deterministic(tmp_path):
    """JSON reads back equal; non-JSON values (a Path) are written as str; key order does not change the bytes."""
    obj = {"b": [1, 2.5, None, True], "a": {"nested": "ü"}, "path": Path("/x/y")}
    atomic_write_json(tmp_path / "one.json", obj)
    atomic_write_json(tmp_path / "two.json", dict(reversed(list(obj.items()))))
    assert json.loads((tmp_path / "one.json").read_text()) == {**obj, "path": "/x/y"}
    assert (tmp_path / "one.json").read_bytes() == (tmp_path / "two.json").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one.json", "two.json"]


@pytest.mark.parametrize("kind", list(WRITERS))
def test_replace_swaps_the_file_instead_of_rewriting_it(tmp_path, kind):
    """An existing file is replaced by a rename: a reader that has the old file open still reads the old
    bytes whole, the name then holds the new content, and no temp file is left."""
    target = tmp_path / f"f.{kind}"
    old = b"old content that a reader has open" * 100
    target.write_bytes(old)
    with open(target, "rb") as reader:
        WRITERS[kind](target)
        assert reader.read() == old
    assert target.read_bytes() != old
    assert [p.name for p in tmp_path.iterdir()] == [target.name]


def test_file_mode_follows_the_umask_not_mkstemp(tmp_path):
    """Files come out 0o666 & ~umask (0o644 under 0o022, 0o640 under 0o027), like open() makes them,
    not mkstemp's 0o600. Run in fresh processes, because fsutil reads the umask once at import."""
    script = (
        "import sys, numpy as np; from pathlib import Path; from shiftlab import fsutil as f\n"
        "d = Path(sys.argv[1]); d.mkdir()\n"
        "f.atomic_write_bytes(d / 'b', b'x'); f.atomic_write_json(d / 'j', {}); "
        "f.atomic_save_npy(d / 'y', np.zeros(2)); f.atomic_save_npz(d / 'z', a=np.zeros(2))\n"
        "open(d / 'plain', 'w').close()\n"
    )
    for umask, expected in ((0o022, 0o644), (0o027, 0o640)):
        d = tmp_path / f"u{umask:o}"
        subprocess.run([sys.executable, "-c", script, str(d)], umask=umask, check=True, timeout=30)
        modes = {p.name: _mode(p) for p in d.iterdir()}
        assert modes == dict.fromkeys(["b", "j", "y", "z", "plain"], expected), {k: oct(v) for k, v in modes.items()}


def test_file_mode_matches_a_plain_open_in_this_process(tmp_path):
    """In the test process too, an atomically written file has the mode a plain open() gives."""
    (tmp_path / "plain").touch()
    for kind, write in WRITERS.items():
        write(tmp_path / kind)
        assert _mode(tmp_path / kind) == _mode(tmp_path / "plain") != 0o600, kind


@pytest.mark.parametrize("kind", list(WRITERS))
def test_failed_rename_keeps_the_old_file_and_removes_the_temp(tmp_path, monkeypatch, kind):
    """If the final rename fails, the error propagates, the old file is untouched and no temp file remains."""
    target = tmp_path / "target"
    target.write_bytes(b"old")

    def broken_replace(src, dst):
        raise OSError("disk on fire")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk on fire"):
        WRITERS[kind](target)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["target"]


def test_failure_half_way_through_writing_keeps_the_old_file(tmp_path, monkeypatch):
    """A writer that dies after writing part of the data leaves the old file whole and no temp file."""
    target = tmp_path / "target"
    target.write_bytes(b"old")
    real_write_bytes, real_save, real_savez = Path.write_bytes, np.save, np.savez

    def half_write_bytes(self, data):
        real_write_bytes(self, data[: len(data) // 2])
        raise OSError("killed mid-write")

    def half_save(f, arr, *a, **k):
        real_save(f, arr, *a, **k)
        f.truncate(f.tell() // 2)
        raise OSError("killed mid-write")

    def half_savez(f, *a, **k):
        real_savez(f, *a, **k)
        f.truncate(f.tell() // 2)
        raise OSError("killed mid-write")

    monkeypatch.setattr(Path, "write_bytes", half_write_bytes)
    monkeypatch.setattr(fsutil.np, "save", half_save)
    monkeypatch.setattr(fsutil.np, "savez", half_savez)
    for kind, write in WRITERS.items():
        with pytest.raises(OSError, match="killed mid-write"):
            write(target)
        assert target.read_bytes() == b"old", kind
        assert [p.name for p in tmp_path.iterdir()] == ["target"], kind


def test_unserialisable_json_leaves_nothing_behind(tmp_path):
    """A JSON encoding error (a cycle) raises and creates neither the file nor a temp file."""
    cyclic: dict = {}
    cyclic["self"] = cyclic
    with pytest.raises(ValueError):
        atomic_write_json(tmp_path / "c.json", cyclic)
    assert list(tmp_path.iterdir()) == []


ARRAYS = {
    "f32": np.array([[0.1, -0.0, np.inf], [np.nan, 1e-45, -3.4e38]], np.float32),
    "f16": np.array([65504, 6e-8, np.nan], np.float16),
    "f64": np.random.default_rng(0).normal(size=(3, 4)),
    "i64": np.array([-(2**63), 0, 2**63 - 1], np.int64),
    "u8": np.arange(256, dtype=np.uint8).reshape(16, 16),
    "bool": np.array([True, False, True]),
    "str": np.array(["a", "ünï", ""]),
    "empty": np.zeros((0, 7), np.float32),
    "scalar": np.array(3.25),
    "fortran": np.asfortranarray(np.arange(12.0).reshape(3, 4)),
}


def _same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and np.ascontiguousarray(a).tobytes() == \
        np.ascontiguousarray(b).tobytes()


@pytest.mark.parametrize("name", list(ARRAYS))
def test_atomic_save_npy_round_trips_bit_for_bit(tmp_path, name):
    """np.load gives back the same dtype, shape and bytes (NaN, ±0, subnormals, extremes included)."""
    atomic_save_npy(tmp_path / "x.npy", ARRAYS[name])
    assert _same_bits(np.load(tmp_path / "x.npy"), ARRAYS[name])
    assert [p.name for p in tmp_path.iterdir()] == ["x.npy"]


def test_atomic_save_npz_round_trips_every_array_bit_for_bit(tmp_path):
    """All named arrays come back under their names, bit-identical, and nothing else is in the archive."""
    atomic_save_npz(tmp_path / "x.npz", **ARRAYS)
    with np.load(tmp_path / "x.npz") as z:
        assert sorted(z.files) == sorted(ARRAYS)
        for k, v in ARRAYS.items():
            assert _same_bits(z[k], v), k
    assert [p.name for p in tmp_path.iterdir()] == ["x.npz"]


# --- file_lock --------------------------------------------------------------------------------------

TAKE_LOCK = """
import sys, time
from shiftlab.fsutil import file_lock
lock, log, hold = sys.argv[1], sys.argv[2], float(sys.argv[3])
def note(s):
    with open(log, "a") as f:
        f.write(f"{s} {time.time():.6f}\\n")
note("child-waiting")
with file_lock(lock):
    note("child-acquired")
    time.sleep(hold)
note("child-released")
"""


def _log(path: Path) -> list[tuple[str, float]]:
    if not path.is_file():
        return []
    return [(w, float(t)) for w, t in (line.split() for line in path.read_text().splitlines())]


def _child(lock: Path, log: Path, hold: float) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", TAKE_LOCK, str(lock), str(log), str(hold)])


def test_file_lock_makes_a_second_process_wait_until_release(tmp_path):
    """While this process holds the lock, another process asking for it waits; it gets it only after the
    release (checked by the order and timestamps of a shared log). The lock's folder is created."""
    lock, log = tmp_path / "not" / "yet" / "lock", tmp_path / "log"
    with file_lock(lock):
        assert lock.parent.is_dir()
        child = _child(lock, log, 0)
        try:
            assert _wait_for(lambda: any(w == "child-waiting" for w, _ in _log(log))), "child never started"
            time.sleep(0.5)
            assert child.poll() is None
            assert [w for w, _ in _log(log)] == ["child-waiting"]
            released = time.time()
        except BaseException:
            child.kill()
            raise
    assert child.wait(5) == 0
    entries = dict(_log(log))
    assert [w for w, _ in _log(log)] == ["child-waiting", "child-acquired", "child-released"]
    assert entries["child-acquired"] >= released
    assert entries["child-acquired"] - entries["child-waiting"] >= 0.5


def test_file_lock_is_held_by_another_process_then_freed_when_it_dies(tmp_path):
    """A lock held by another process keeps us out; when that process is killed (SIGKILL, no clean-up)
    the OS frees the lock and we get it."""
    lock, log = tmp_path / "lock", tmp_path / "log"
    child = _child(lock, log, 60)
    acquired = threading.Event()

    def take():
        with file_lock(lock):
            acquired.set()

    try:
        assert _wait_for(lambda: any(w == "child-acquired" for w, _ in _log(log))), "child never took the lock"
        threading.Thread(target=take, daemon=True).start()
        assert not acquired.wait(0.5), "got the lock while another process held it"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(5)
    assert acquired.wait(4), "lock not freed after its holder died"
    assert [w for w, _ in _log(log)] == ["child-waiting", "child-acquired"]


def test_file_lock_is_released_when_the_block_raises(tmp_path):
    """An exception inside ``with file_lock`` propagates and leaves the lock free for another process."""
    lock, log = tmp_path / "lock", tmp_path / "log"
    with pytest.raises(RuntimeError, match="boom"), file_lock(lock):
        raise RuntimeError("boom")
    child = _child(lock, log, 0)
    assert child.wait(5) == 0
    assert [w for w, _ in _log(log)] == ["child-waiting", "child-acquired", "child-released"]


def test_file_lock_serialises_threads_of_one_process(tmp_path):
    """Each ``file_lock`` opens its own descriptor, so even threads of one process take turns: the
    critical sections never overlap."""
    lock, inside, overlaps = tmp_path / "lock", [], []

    def work():
        for _ in range(20):
            with file_lock(lock):
                inside.append(1)
                if len(inside) > 1:
                    overlaps.append(len(inside))
                time.sleep(0.001)
                inside.pop()

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert not any(t.is_alive() for t in threads)
    assert overlaps == []
