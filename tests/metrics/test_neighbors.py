"""Exact chunked kNN (``shiftlab.metrics.neighbors.knn``): chunked, unchunked and brute force agree, ties go to the
lower reference row, chunks are cached by content hash."""

from __future__ import annotations

import numpy as np
import pytest

from shiftlab.errors import InputError
from shiftlab.metrics.neighbors import knn


# --- knn -----------------------------------------------------------------------------------------------
def _brute(q, r, k):
    d = ((q[:, None, :].astype(np.float64) - r[None].astype(np.float64)) ** 2).sum(-1)
    order = np.lexsort((np.broadcast_to(np.arange(len(r)), d.shape), d), axis=1)[:, :k]
    return np.take_along_axis(d, order, 1), order


def test_knn_chunked_equals_unchunked_and_brute_force(tmp_path):
    rng = np.random.default_rng(0)
    r = rng.integers(0, 256, (300, 48), dtype=np.uint8)
    r[10] = r[20] = r[5]  # exact ties: broken by the smaller reference row
    q = np.concatenate([rng.integers(0, 256, (57, 48), dtype=np.uint8), r[[5, 100]]])
    full = knn(q, r, 12, chunk=10_000, ref_chunk=10_000)
    chunked = knn(q, r, 12, chunk=7, ref_chunk=33, cache_dir=tmp_path / "c")
    bd, bi = _brute(q, r, 12)
    for a, b in ((full, chunked), (full, (bd, bi))):
        np.testing.assert_array_equal(a[1], b[1])
        np.testing.assert_array_equal(a[0], b[0])
    assert full[1][-2, :3].tolist() == [5, 10, 20] and full[0][-2, 0] == 0
    assert np.all(np.diff(full[0], axis=1) >= 0)
    # cached: the same chunks read back, identical
    files = sorted((tmp_path / "c").glob("*.npz"))
    assert len(files) == 9
    again = knn(q, r, 12, chunk=7, ref_chunk=33, cache_dir=tmp_path / "c")
    np.testing.assert_array_equal(again[1], chunked[1])
    assert sorted((tmp_path / "c").glob("*.npz")) == files


def test_knn_float_features_and_limits():
    rng = np.random.default_rng(1)
    r = rng.normal(size=(50, 16)).astype(np.float32)
    q = rng.normal(size=(9, 16)).astype(np.float32)
    a, b = knn(q, r, 5, chunk=2, ref_chunk=7), knn(q, r, 5)
    np.testing.assert_array_equal(a[1], b[1])
    np.testing.assert_allclose(a[0], _brute(q, r, 5)[0], rtol=1e-12)
    d, i = knn(q, r[:3], 10)
    assert d.shape == i.shape == (9, 3)
    with pytest.raises(InputError):
        knn(q, r[:, :4], 3)
    with pytest.raises(InputError):
        knn(q, r, 3, metric="cosine")


def test_hash_rows_reads_in_blocks_and_of_chosen_rows_as_of_their_copy():
    import hashlib

    from shiftlab.metrics.neighbors import hash_rows

    def whole(a):  # the digest of the copy, hashed at once
        h = hashlib.sha256(f"{a.dtype.str}{a.shape}".encode())
        h.update(np.ascontiguousarray(a).data)
        return h.hexdigest()

    a = np.random.default_rng(0).integers(0, 255, (37, 3, 8, 8), dtype=np.uint8)
    rows = np.array([5, 1, 30, 2])
    assert hash_rows(a) == hash_rows(a, block_bytes=100) == whole(a)
    assert hash_rows(a, rows) == hash_rows(a, rows, block_bytes=1) == whole(a[rows])
    b = a.copy()
    b[36, 2, 7, 7] ^= 1
    assert hash_rows(b) != hash_rows(a) and hash_rows(b, rows) == hash_rows(a, rows)  # row 36 is not hashed
