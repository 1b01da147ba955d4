"""Issue 18.3 and 18.4: the image server's memory, disk and decoding are bounded, and a re-registered
dataset never shows stale pixels."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers import write_image
from shiftlab.review.images import APP_MAX_PIXELS, AS_IS, SIZE_STEPS, ImageServer, snap_size, warm_thumbnails


def _register(folder: Path, name: str, ws):
    from shiftlab.data.layouts import read_dataset
    from shiftlab.registry import register_dataset

    register_dataset(read_dataset(folder, progress=False), name, ws)


@pytest.fixture
def ws(tmp_path):
    from shiftlab.workspace import Workspace

    return Workspace.resolve(tmp_path / "ws")


def _gradient(w: int, h: int) -> Image.Image:
    """A smooth RGB picture: large in pixels, small as a PNG."""
    x = np.linspace(0, 255, w, dtype=np.float32)[None, :]
    y = np.linspace(0, 255, h, dtype=np.float32)[:, None]
    return Image.fromarray(np.stack([x + 0 * y, y + 0 * x, (x + y) / 2], -1).astype(np.uint8), "RGB")


def test_sizes_snap_to_the_rendered_steps():
    assert [snap_size(s) for s in (None, 1, 16, 64, 65, 112, 113, 512, 513, 2048, 5000)] == \
        [None, 64, 64, 64, 112, 112, 160, 512, 1024, 2048, 2048]
    assert all(snap_size(s) in SIZE_STEPS for s in range(1, 3000))


def test_sixty_size_variants_cost_at_most_one_file_per_step_and_a_bounded_cache(ws, tmp_path):
    d = tmp_path / "set" / "n01440764"
    d.mkdir(parents=True)
    _gradient(600, 400).save(d / "big.png")
    _register(tmp_path / "set", "s", ws)
    server = ImageServer(ws, max_bytes=300_000)
    sizes = range(16, 16 + 60 * 33, 33)  # 60 different ?size= values, 16 … 1963
    answers = {s: server.image("s", "big.png", s) for s in sizes}
    assert all(a is not None for a in answers.values())
    files = [f for f in (ws.root / "cache" / "thumbs").rglob("*") if f.is_file() and f.suffix != AS_IS]
    # 600 px is at most the 1024 step: the steps below it are rendered, those above serve the file itself (a
    # marker of a few bytes says so, so that the next request does not decode it again)
    assert len(files) == len([s for s in SIZE_STEPS if s < 600])
    markers = list((ws.root / "cache" / "thumbs").rglob(f"*{AS_IS}"))
    assert len(markers) == len([s for s in SIZE_STEPS if s >= 600]) and all(m.stat().st_size < 20 for m in markers)
    assert 0 < server.cached_bytes <= 300_000
    # requests within one step get the same bytes: 115 and 148 are both the 160 px rendering
    assert answers[115] == answers[148] and Image.open(io.BytesIO(answers[115][0])).size == (160, 107)


def test_peak_memory_stays_bounded_under_hostile_images(ws, tmp_path):
    """60 size variants of a 2048² PNG and a 354-KB-class 12000×14000 PNG asked for at ?size=19, 40 requests at
    once (uvicorn's thread pool): the process's peak RSS (VmHWM, reset before the requests) grows by less than
    ``bound_mb`` (before the fix, measured here: +754 MB for the variants, +1060 MB for the large PNG)."""
    bound_mb = 150
    d = tmp_path / "set" / "n01440764"
    d.mkdir(parents=True)
    _gradient(2048, 2048).save(d / "square.png")
    Image.new("1", (12000, 14000), 1).save(d / "huge.png")  # 1 bit per pixel here: 504 MB once decoded to RGB
    write_image(d / "small.png", size=(32, 32), fmt="PNG")
    # an 8000×6000 JPEG (48 Mpx, over the app's limit) that draft mode can still shrink cheaply
    Image.fromarray(np.zeros((6000, 8000), np.uint8), "L").save(d / "photo.jpg", quality=50)
    assert os.path.getsize(d / "huge.png") < 1_000_000 and 8000 * 6000 > APP_MAX_PIXELS
    _register(tmp_path / "set", "s", ws)
    script = textwrap.dedent(f"""
        import json, re
        from concurrent.futures import ThreadPoolExecutor
        from shiftlab.review.images import ImageServer
        from shiftlab.workspace import Workspace
        def status(k):  # kB → MB, from the kernel's own accounting of this process
            return int(re.search(k + r":\\s+(\\d+)", open("/proc/self/status").read()).group(1)) / 1024
        server = ImageServer(Workspace.resolve({str(ws.root)!r}))
        assert server.image("s", "small.png", 16) is not None  # warm: codecs, manifest, imports
        open("/proc/self/clear_refs", "w").write("5")  # reset the peak (VmHWM) to the memory in use now
        before = status("VmRSS")
        jobs = [("square.png", s) for s in range(16, 16 + 60 * 33, 33)] + [("huge.png", 19)] * 10 \\
            + [("huge.png", None), ("photo.jpg", 64), ("photo.jpg", None)]
        with ThreadPoolExecutor(40) as pool:
            got = list(pool.map(lambda j: server.image("s", *j), jobs))
        print(json.dumps({{"grew_mb": status("VmHWM") - before, "cached": server.cached_bytes,
                           "square": sum(g is not None for g in got[:60]), "huge": [g is None for g in got[60:71]],
                           "photo64": got[71] is not None, "photo": got[72] is None}}))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    r = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"peak RSS grew by {r['grew_mb']:.0f} MB (bound {bound_mb} MB)")
    assert r["square"] == 60 and all(r["huge"]) and r["photo64"] and r["photo"]
    assert r["grew_mb"] < bound_mb
    assert r["cached"] <= 128 * 1024 * 1024


def test_decodes_at_once_are_capped(ws, tmp_path, monkeypatch):
    import threading
    import time

    from shiftlab.review import images as im

    d = tmp_path / "set" / "n01440764"
    for i in range(12):
        write_image(d / f"{i}.png", size=(300, 200), seed=i, fmt="PNG")
    _register(tmp_path / "set", "s", ws)
    now, most, lock = 0, 0, threading.Lock()
    real = im._render

    def counting(*a, **k):
        nonlocal now, most
        with lock:
            now += 1
            most = max(most, now)
        time.sleep(0.02)
        try:
            return real(*a, **k)
        finally:
            with lock:
                now -= 1

    monkeypatch.setattr(im, "_render", counting)
    server = ImageServer(ws, max_decodes=3)
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(12) as pool:
        assert all(pool.map(lambda i: server.image("s", f"{i}.png", 64) is not None, range(12)))
    assert most == 3


# --- 18.4 ---------------------------------------------------------------------------------------------------
def test_re_registering_never_serves_stale_pixels(ws, tmp_path):
    """Same id, same file size, same mtimes (a copy that keeps times, within one clock tick): the new picture."""
    d = tmp_path / "set" / "n01440764"
    d.mkdir(parents=True)
    Image.new("RGB", (200, 150), (255, 0, 0)).save(d / "x.bmp")  # BMP: the size depends on the dimensions only
    _register(tmp_path / "set", "s", ws)
    manifest = ws.root / "manifests" / "s.parquet"
    server = ImageServer(ws)
    red = server.image("s", "x.bmp", None)
    assert server.in_memory("s", "x.bmp", None) == red
    thumb = server.image("s", "x.bmp", 64)  # rendered, and kept on disk
    assert Image.open(io.BytesIO(thumb[0])).getpixel((0, 0)) == (255, 0, 0)
    st_img, st_man = os.stat(d / "x.bmp"), os.stat(manifest)
    Image.new("RGB", (200, 150), (0, 0, 255)).save(d / "x.bmp")
    assert os.path.getsize(d / "x.bmp") == st_img.st_size  # the same size: only the content differs
    os.utime(d / "x.bmp", ns=(st_img.st_atime_ns, st_img.st_mtime_ns))
    _register(tmp_path / "set", "s", ws)
    os.utime(manifest, ns=(st_man.st_atime_ns, st_man.st_mtime_ns))
    for ask in (server.in_memory, server.image):  # the fast path and the slow one
        got = ask("s", "x.bmp", None)
        assert got is None or Image.open(io.BytesIO(got[0])).getpixel((0, 0)) == (0, 0, 255), ask
    # a thumbnail rendered from the old file on disk is not reused either
    small = server.image("s", "x.bmp", 64)
    assert Image.open(io.BytesIO(small[0])).getpixel((0, 0)) == (0, 0, 255)


def test_a_warm_cache_serves_and_warms_without_decoding_again(ws, tmp_path, monkeypatch):
    """Issue 19.3: a second demo run decoded every small image again (those shown as they are had no disk copy),
    and walked every thumbnail of every task again."""
    import shiftlab.review.images as im

    d = tmp_path / "set" / "n01440764"
    d.mkdir(parents=True)
    for i in range(3):
        write_image(d / f"{i}.png", size=(32, 32), seed=i)
    _register(tmp_path / "set", "s", ws)
    task = {"kind": "images", "dataset": "s", "items": [{"id": f"{i}.png"} for i in range(3)]}
    assert warm_thumbnails(task, ws, progress=False) == (3, 3)
    first = {i: ImageServer(ws).image("s", f"{i}.png", 160) for i in range(3)}
    assert all(v[0] == (d / f"{i}.png").read_bytes() for i, v in first.items())  # shown as they are

    def no_decoding(*a, **k):
        raise AssertionError("decoded again")

    monkeypatch.setattr(im, "_render", no_decoding)
    assert {i: ImageServer(ws).image("s", f"{i}.png", 160) for i in range(3)} == first
    calls = []
    monkeypatch.setattr(ImageServer, "image", lambda self, *a: calls.append(a))
    assert warm_thumbnails(task, ws, progress=False) == (3, 3) and calls == []  # the marker: nothing to walk
    # another task, or the same task over a re-registered dataset, is walked again
    _register(tmp_path / "set", "s", ws)
    os.utime(ws.root / "manifests" / "s.parquet", ns=(1, 1))
    warm_thumbnails(task, ws, progress=False)
    assert len(calls) == 3
