"""Per-image representations for the near-duplicate metrics: the scaled copy, perceptual hashes, embeddings."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from shiftlab.data.recipes import Recipe
from shiftlab.fsutil import atomic_save_npy
from shiftlab.predict.cache import DecodedCache
from shiftlab.predict.engine import predict
from shiftlab.workspace import Workspace


# --- per-image representations ---------------------------------------------------------------------
def scaled_recipe(size: int = 256):
    """The recipe of the "scaled" copy: size×size RGB uint8, aspect ratio not kept, no normalisation."""
    return Recipe(resize=size, crop=None, square=True, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))


def scaled_pixels(manifest, workspace=None, *, size: int = 256, progress: bool = True):
    """(uint8 (N, 3, size, size) memory map, valid mask (N,)), decoded once into the workspace cache."""
    ws = workspace if isinstance(workspace, Workspace) else Workspace.resolve(workspace)
    cache = DecodedCache(manifest, scaled_recipe(size), ws, progress=progress).build()
    return cache.pixels(), cache.valid_mask()


def phash_bits(pixels: np.ndarray) -> np.ndarray:
    """uint8 (N, 3, H, W) → uint8 (N, 64) of 0/1: the bits of ``imagehash.phash`` of each image.

    For a whole decoded cache (a memory map of its file) the bits are kept beside that file: a decoded cache is
    written once and never changed in place, so its path, size and mtime name its content."""
    kept = _kept_beside(pixels, ".phash64.npy")
    if kept is not None and kept.is_file():
        return np.load(kept)
    out = _phash_bits(pixels)
    if kept is not None:
        atomic_save_npy(kept, out)
    return out


def _kept_beside(pixels: np.ndarray, suffix: str) -> Path | None:
    """Where a result computed from all of a memory-mapped file is kept: beside it, named by its version."""
    name = getattr(pixels, "filename", None)
    if not isinstance(pixels, np.memmap) or not name:
        return None
    f = Path(name)
    try:
        st = f.stat()
    except OSError:
        return None
    if pixels.nbytes + pixels.offset != st.st_size:  # a part of the file (rows taken): computed, not kept
        return None
    # a build in progress writes rows in place, which moves the mtime: a result kept before names another version
    return f.with_name(f"{f.name}.{st.st_size}-{st.st_mtime_ns}{suffix}")


def _phash_bits(pixels: np.ndarray) -> np.ndarray:
    import imagehash
    from PIL import Image

    out = np.zeros((len(pixels), 64), np.uint8)
    for i in range(len(pixels)):
        img = Image.fromarray(np.ascontiguousarray(np.asarray(pixels[i]).transpose(1, 2, 0)))
        out[i] = imagehash.phash(img).hash.reshape(-1)
    return out


def embeddings(manifest, model: str, workspace=None, *, device: str = "auto", progress: bool = True):
    """(float32 (N, D) penultimate features of ``model`` on its own recipe, valid mask (N,))."""
    p = predict(manifest, [model], workspace=workspace, features=True, device=device, progress=progress)[0]
    return np.nan_to_num(p.features.astype(np.float32)), p.valid


def flat_pixels(pixels: np.ndarray) -> np.ndarray:
    """(N, ...) → (N, M), each row flattened; a reshape, so a memory map stays one (not read into memory)."""
    return pixels.reshape(len(pixels), -1)  # a memory map stays one: knn reads it a chunk at a time


def take_rows(a: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``a[rows]``, or ``a`` itself (no copy) when ``rows`` has as many entries as ``a`` has rows."""
    return a if len(rows) == len(a) else a[rows]  # a copy only when undecodable rows must go
