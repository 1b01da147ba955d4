"""The decoded-tensor cache: each image of a manifest decoded once per geometric recipe.

Layout of one cache (``<workspace>/cache/decoded/<images>-<geometry>/``): ``pixels.npy`` — a
memory-mapped uint8 array (N, C, H, W); ``chunks/<i>.json`` — written after chunk i's pixels, holding the
reasons of its undecodable rows (its presence means the chunk is done); ``complete.json`` — all bad rows,
written last. A killed build resumes from the finished chunks. Builders take a file lock, so two
processes never decode into the same cache at once.

Decoding runs in a thread pool (Pillow releases the GIL while decoding and resizing) and, when started
with ``start()``, in the background: ``rows(a, b)`` hands out finished rows while later ones decode, so
the first model computes while the rest of the set is still being decoded.
"""

from __future__ import annotations

import json
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from shiftlab.data.decode import DEFAULT_MAX_PIXELS, decode_image
from shiftlab.fsutil import atomic_write_json, file_lock
from shiftlab.progress import bar

CHUNK = 64  # rows per decoded chunk: small, so that the first model can start early


def decode_pixels(path, recipe, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[np.ndarray | None, str | None]:
    """One image file at the recipe's geometry: (uint8 (C, H, W), None), or (None, reason) when it cannot be
    decoded. The one decoding step of every executor, so that the local cache and Ray workers agree bit for bit."""
    r = decode_image(path, mode=recipe.mode, max_pixels=max_pixels)
    if not r.ok:
        return None, r.reason
    try:
        return recipe.apply(r.image), None
    except Exception as e:
        return None, f"corrupt: {type(e).__name__}"


class DecodedCache:
    """A manifest's images decoded once per recipe geometry into a uint8 (N, C, H, W) memory map (module docstring).

    ``workspace``: a ``Workspace`` (the cache lives under its ``decoded`` folder). ``workers``: decoding threads
    (default min(8, CPUs)). ``max_pixels``: the decompression-bomb limit, width × height in px. ``chunk``: rows
    per chunk (default 64). Creating one only reads a finished cache; ``build()`` or ``start()`` decodes.
    """

    def __init__(self, manifest, recipe, workspace, *, workers: int | None = None,
                 max_pixels: int = DEFAULT_MAX_PIXELS, progress: bool = True, chunk: int = CHUNK):
        self.manifest, self.recipe = manifest, recipe
        self.n = len(manifest)
        self.shape = (self.n, *recipe.input_shape)
        self.chunk = chunk
        self.n_chunks = (self.n + chunk - 1) // chunk
        self.workers = workers or min(8, os.cpu_count() or 2)
        self.max_pixels = max_pixels
        self.progress = progress
        self.dir = Path(workspace.decoded) / f"{manifest.image_hash[:20]}-{recipe.geometry_key()}-{max_pixels}"
        self._done = np.zeros(self.n_chunks, bool)
        self._bad: dict[int, str] = {}
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._pixels: np.ndarray | None = None
        if (self.dir / "complete.json").is_file():
            self._load_complete()

    # --- state ----------------------------------------------------------------------------------
    @property
    def complete(self) -> bool:
        """Whether every chunk has been decoded."""
        return bool(self._done.all())

    @property
    def bad(self) -> dict[int, str]:
        """Row index → reason, for undecodable rows found so far (all of them once complete)."""
        return dict(self._bad)

    def valid_mask(self) -> np.ndarray:
        """Bool (N,): False for the undecodable rows found so far."""
        m = np.ones(self.n, bool)
        m[list(self._bad)] = False
        return m

    def _load_complete(self) -> None:
        doc = json.loads((self.dir / "complete.json").read_text())
        self._bad = {int(k): v for k, v in doc["bad"].items()}
        self._done[:] = True

    def pixels(self) -> np.ndarray:
        """The read-only uint8 (N, C, H, W) memory map of ``pixels.npy`` (undecodable rows are zeros)."""
        if self._pixels is None:
            self._pixels = np.load(self.dir / "pixels.npy", mmap_mode="r")
        return self._pixels

    # --- building ---------------------------------------------------------------------------------
    def build(self) -> DecodedCache:
        """Decode everything not yet decoded (blocking)."""
        if not self.complete:
            self._build()
        return self

    def start(self) -> DecodedCache:
        """Decode in a background thread; ``rows()`` waits for what it needs."""
        if not self.complete and self._thread is None:
            self._thread = threading.Thread(target=self._build_guarded, name="shiftlab-decode", daemon=True)
            self._thread.start()
        return self

    def join(self) -> None:
        """Wait for the background decoding of ``start()`` to end; re-raises the error it ended with."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._error is not None:
            raise self._error

    def _build_guarded(self) -> None:
        try:
            self._build()
        except BaseException as e:
            self._error = e
            with self._cond:
                self._cond.notify_all()

    def _build(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        with file_lock(self.dir / "lock"):
            if (self.dir / "complete.json").is_file():  # another process finished it meanwhile
                self._load_complete()
                with self._cond:
                    self._cond.notify_all()
                return
            out = self._open_for_writing()
            chunks_dir = self.dir / "chunks"
            chunks_dir.mkdir(exist_ok=True)
            paths = self.manifest.abspaths()
            todo = []
            for c in range(self.n_chunks):
                f = chunks_dir / f"{c:06d}.json"
                if f.is_file():
                    self._mark_done(c, {int(k): v for k, v in json.loads(f.read_text()).items()})
                else:
                    todo.append(c)
            recipe, limit = self.recipe, self.max_pixels

            def decode_row(i: int) -> str | None:
                pixels, reason = decode_pixels(paths[i], recipe, limit)
                out[i] = 0 if pixels is None else pixels
                return reason

            total = sum(min(self.chunk, self.n - c * self.chunk) for c in todo)
            with ThreadPoolExecutor(self.workers) as pool, \
                    bar(f"decoding {self.manifest.name}", total, disable=not self.progress) as b:
                for c in todo:
                    lo, hi = c * self.chunk, min(self.n, (c + 1) * self.chunk)
                    reasons = list(pool.map(decode_row, range(lo, hi)))
                    bad = {i: r for i, r in zip(range(lo, hi), reasons) if r is not None}
                    out.flush()
                    atomic_write_json(chunks_dir / f"{c:06d}.json", {str(k): v for k, v in bad.items()})
                    self._mark_done(c, bad)
                    b.advance(hi - lo)
            atomic_write_json(self.dir / "complete.json", {
                "n": self.n, "shape": list(self.shape), "manifest": self.manifest.name,
                "geometry": self.recipe.geometry(), "bad": {str(k): v for k, v in sorted(self._bad.items())}})

    def _open_for_writing(self) -> np.ndarray:
        f = self.dir / "pixels.npy"
        if f.is_file():
            arr = np.load(f, mmap_mode="r+")
            if arr.shape == self.shape and arr.dtype == np.uint8:
                return arr
        for old in (self.dir / "chunks").glob("*.json") if (self.dir / "chunks").is_dir() else []:
            old.unlink()
        return np.lib.format.open_memmap(f, mode="w+", dtype=np.uint8, shape=self.shape)

    def _mark_done(self, c: int, bad: dict[int, str]) -> None:
        with self._cond:
            self._bad.update(bad)
            self._done[c] = True
            self._cond.notify_all()

    # --- reading ----------------------------------------------------------------------------------
    def rows(self, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
        """(uint8 (hi-lo, C, H, W), valid mask (hi-lo,)), waiting until those rows are decoded."""
        first, last = lo // self.chunk, (max(hi, lo + 1) - 1) // self.chunk
        with self._cond:
            while not self._done[first:last + 1].all():
                if self._error is not None:
                    raise self._error
                if self._thread is None:
                    raise RuntimeError("rows() on an unfinished cache: call start() or build() first")
                self._cond.wait(timeout=1.0)
        valid = np.ones(hi - lo, bool)
        for i in self._bad:
            if lo <= i < hi:
                valid[i - lo] = False
        return self.pixels()[lo:hi], valid
