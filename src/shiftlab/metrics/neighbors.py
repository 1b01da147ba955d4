"""Exact k-nearest-neighbour search in chunks (FAISS shortlists, float64 re-scoring, deterministic ties)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from shiftlab.errors import InputError
from shiftlab.fsutil import atomic_save_npz


# --- exact, chunked top-k ---------------------------------------------------------------------------
def hash_rows(a: np.ndarray, rows: np.ndarray | None = None, *, block_bytes: int = 64 << 20) -> str:
    """The sha256 (hex) of an array's dtype, shape and bytes (C order): a cache key for its content.

    ``rows``: hash ``a[rows]`` instead (same digest as hashing that copy). The bytes are read ``block_bytes``
    at a time, so a memory-mapped pixel cache of many GB is hashed without being copied whole."""
    n = len(a) if rows is None else len(rows)
    shape = (n, *a.shape[1:]) if a.ndim else a.shape
    h = hashlib.sha256(f"{a.dtype.str}{shape}".encode())
    if a.ndim == 0:
        h.update(np.ascontiguousarray(a).data)
        return h.hexdigest()
    per = max(1, block_bytes // max(1, a.dtype.itemsize * int(np.prod(a.shape[1:]))))
    for lo in range(0, n, per):
        part = a[lo:lo + per] if rows is None else a[rows[lo:lo + per]]
        h.update(np.ascontiguousarray(part).data)
    return h.hexdigest()


def _sq_dist64(q: np.ndarray, reference: np.ndarray, idx: np.ndarray, budget: int = 4 << 20) -> np.ndarray:
    """Squared distances in float64 of q[j] to reference[idx[j, c]]: (n, c), independent of batching
    (each row is one contiguous sum over d, whatever the block), vectorised over blocks of queries.
    Blocks of ~4 MB stay in the CPU's cache across the gather, subtract, square and sum: a whole
    20,000² × 512 ``knn`` took 7.1 s with them against 8.6 s with 64 MB blocks (bench/RESULTS.md)."""
    n, c = idx.shape
    d = q.shape[1]
    out = np.empty((n, c), np.float64)
    step = max(1, budget // max(1, c * d * 8))
    for lo in range(0, n, step):
        hi = min(n, lo + step)
        diff = np.asarray(reference[idx[lo:hi]], dtype=np.float64) - np.asarray(q[lo:hi], np.float64)[:, None, :]
        out[lo:hi] = np.square(diff, out=diff).sum(axis=-1)
    return out


def _knn_chunk(reference: np.ndarray, q: np.ndarray, k: int, ref_chunk: int, margin: int):
    """The exact k nearest rows of ``reference`` for one chunk of queries: (dist (n, k), idx (n, k))."""
    import faiss

    n, m = len(q), len(reference)
    qf = np.ascontiguousarray(q, dtype=np.float32)
    best_d = np.full((n, 0), np.inf)
    best_i = np.zeros((n, 0), np.int64)
    for lo in range(0, m, ref_chunk):
        hi = min(m, lo + ref_chunk)
        r = np.ascontiguousarray(reference[lo:hi], dtype=np.float32)
        index = faiss.IndexFlatL2(r.shape[1])
        index.add(r)
        kk = min(hi - lo, k + margin)
        _, i = index.search(qf, kk)
        i = i.astype(np.int64) + lo
        # re-score exactly: FAISS distances depend on batch shapes; these do not
        d = _sq_dist64(q, reference, i)
        best_d, best_i = np.concatenate([best_d, d], 1), np.concatenate([best_i, i], 1)
        order = np.lexsort((best_i, best_d), axis=1)[:, :k + margin]
        best_d = np.take_along_axis(best_d, order, 1)
        best_i = np.take_along_axis(best_i, order, 1)
    return best_d[:, :k], best_i[:, :k]


def knn(query: np.ndarray, reference: np.ndarray, k: int, *, metric: str = "l2", chunk: int = 4096,
        ref_chunk: int | None = None, cache_dir: str | os.PathLike | None = None, margin: int = 8,
        map_chunks=None):
    """Exact k nearest references of each query row.

    query (n, d), reference (m, d): any numeric dtype (uint8 pixels stay uint8 until a chunk is used).
    metric: ``l2`` (squared Euclidean; on 0/1 bit vectors it is the Hamming distance).
    Returns ``dist`` float64 (n, k') ascending and ``idx`` int64 (n, k'), k' = min(k, m); ties go to the
    smaller reference row. Queries go in chunks of ``chunk`` rows against references in chunks of
    ``ref_chunk`` rows (default: as many as fit in ~512 MB of float32; FAISS ``IndexFlatL2`` shortlists
    ``k + margin`` per chunk pair; the shortlist is
    re-scored in float64), so no distance matrix larger than one chunk pair is ever held. With
    ``cache_dir``, each query chunk's result is stored under sha256(chunk bytes, reference hash, k).
    ``map_chunks(fn, reference, items)``: computes ``fn(reference, *item)`` for each query chunk's item and
    yields the results in order (an executor's ``map``, e.g. on a Ray cluster); default here, one by one.
    The results do not depend on it.
    """
    if metric != "l2":
        raise InputError(f"knn metric must be 'l2', not {metric!r}")
    query, reference = np.asarray(query), np.asarray(reference)
    if query.ndim != 2 or reference.ndim != 2 or query.shape[1] != reference.shape[1]:
        raise InputError(f"knn needs (n, d) and (m, d) arrays, got {query.shape} and {reference.shape}")
    # at most ~512 MB of float32 per chunk: whole reference sets of embeddings, a few hundred raw 256-px images
    rows_in_budget = max(64, (512 << 20) // (4 * max(1, query.shape[1])))
    ref_chunk = rows_in_budget if ref_chunk is None else ref_chunk
    chunk = min(chunk, rows_in_budget)
    if k < 1 or chunk < 1 or ref_chunk < 1:
        raise InputError("knn: k, chunk and ref_chunk must be at least 1")
    n, m = len(query), len(reference)
    k = min(k, m)
    dist, idx = np.zeros((n, k), np.float64), np.zeros((n, k), np.int64)
    if n == 0 or k == 0:
        return dist, idx
    cache = Path(cache_dir) if cache_dir is not None else None
    ref_hash = hash_rows(reference) if cache is not None else ""
    todo = []  # (lo, hi, cache file or None) of the query chunks not in the cache
    for lo in range(0, n, chunk):
        hi = min(n, lo + chunk)
        f = None
        if cache is not None:
            key = hashlib.sha256(f"{hash_rows(query[lo:hi])}|{ref_hash}|{k}|{margin}".encode()).hexdigest()
            f = cache / f"knn-{key[:32]}.npz"
            if f.is_file():
                with np.load(f) as z:
                    dist[lo:hi], idx[lo:hi] = z["dist"], z["idx"]
                continue
        todo.append((lo, hi, f))
    # each query chunk's result depends on that chunk alone, so it may be computed anywhere, in any order
    items = ((query[lo:hi], k, ref_chunk, margin) for lo, hi, _ in todo)
    results = map_chunks(_knn_chunk, reference, items) if map_chunks is not None else \
        (_knn_chunk(reference, *item) for item in items)
    for (lo, hi, f), (d, i) in zip(todo, results):
        dist[lo:hi], idx[lo:hi] = d, i
        if f is not None:
            f.parent.mkdir(parents=True, exist_ok=True)
            atomic_save_npz(f, dist=d, idx=i)
    return dist, idx
