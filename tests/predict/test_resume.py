"""Kill an evaluation with SIGKILL at any moment; run it again; the result equals an uninterrupted run.
Two processes evaluating the same cell at once never corrupt it."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers import TINY_NETS, make_folder

RUN = """
import sys, numpy as np
from shiftlab.data.layouts import read_dataset
from shiftlab.predict.engine import predict
m = read_dataset(sys.argv[1], progress=False)
(p,) = predict(m, [sys.argv[3]], workspace=sys.argv[2], chunk_size=16, batch_size=8, progress=False, workers=2)
np.save(sys.argv[4], p.values)
"""
SPEC = f"python:{TINY_NETS}:tiny?delay=0.03"


def _start(folder, ws, out) -> subprocess.Popen:
    env = {**os.environ, "SHIFTLAB_QUIET": "1"}
    return subprocess.Popen([sys.executable, "-c", RUN, str(folder), str(ws), SPEC, str(out)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _cell_state(ws: Path) -> tuple[int, bool]:
    cells = list((ws / "predictions").glob("*/*"))
    if not cells:
        return 0, False
    (cell,) = cells
    return len(list((cell / "chunks").glob("0*.npz"))), (cell / "complete.json").is_file()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("resume")
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buf, "JPEG")
    folder = make_folder(root / "imgs", per_class=100, bad={"torn.jpg": buf.getvalue()[: len(buf.getvalue()) // 2]})
    t = time.monotonic()
    ref = _start(folder, root / "ws-ref", root / "ref.npy")
    assert ref.wait(120) == 0, ref.stderr.read().decode()
    return folder, np.load(root / "ref.npy"), time.monotonic() - t


def _kill_when(p: subprocess.Popen, ready, timeout: float = 60) -> None:
    t = time.monotonic()
    while p.poll() is None and not ready() and time.monotonic() - t < timeout:
        time.sleep(0.002)
    if p.poll() is None:
        p.send_signal(signal.SIGKILL)
    p.wait(60)


def test_sigkill_at_any_moment_then_resume_gives_identical_logits(data, tmp_path):
    folder, reference, duration = data
    ws, out = tmp_path / "ws", tmp_path / "out.npy"
    decoded = lambda: any((ws / "cache" / "decoded").glob("*/chunks/*.json"))  # noqa: E731
    # kill points: start-up, while decoding, after the first stored chunk, in the middle of inference,
    # and then once more at a fixed time into a run
    _kill_when(_start(folder, ws, out), lambda: False, timeout=0.5)
    _kill_when(_start(folder, ws, out), decoded)
    _kill_when(_start(folder, ws, out), lambda: _cell_state(ws)[0] >= 1)
    n1 = _cell_state(ws)[0]
    _kill_when(_start(folder, ws, out), lambda: _cell_state(ws)[0] >= n1 + 4)
    n2, complete = _cell_state(ws)
    assert 0 < n1 < n2 < 13 and not complete, (n1, n2, complete)  # 201 rows = 13 chunks of 16
    _kill_when(_start(folder, ws, out), lambda: False, timeout=0.8 * duration)
    mtimes = {f: f.stat().st_mtime_ns for f in (ws / "predictions").glob("*/*/chunks/0*.npz")}
    final = _start(folder, ws, out)
    assert final.wait(120) == 0, final.stderr.read().decode()
    # finished chunks were reused, not recomputed
    assert all(f.stat().st_mtime_ns == t for f, t in mtimes.items())
    got = np.load(out)
    assert got.shape == reference.shape == (201, 10)
    np.testing.assert_array_equal(got, reference)  # bit-identical, NaN rows of the bad image included
    (cell,) = (ws / "predictions").glob("*/*")
    assert json.loads((cell / "complete.json").read_text())["bad"] == {"100": "truncated"}


def test_two_processes_on_the_same_cell(data, tmp_path):
    folder, reference, _ = data
    ws = tmp_path / "ws"
    a, b = _start(folder, ws, tmp_path / "a.npy"), _start(folder, ws, tmp_path / "b.npy")
    assert a.wait(120) == 0, a.stderr.read().decode()
    assert b.wait(120) == 0, b.stderr.read().decode()
    np.testing.assert_array_equal(np.load(tmp_path / "a.npy"), reference)
    np.testing.assert_array_equal(np.load(tmp_path / "b.npy"), reference)
    (cell,) = (ws / "predictions").glob("*/*")
    assert not list(cell.rglob("*.tmp"))
    np.testing.assert_array_equal(np.load(cell / "logits.npy").astype(np.float32), reference)
