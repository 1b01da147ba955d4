"""DSSIM scores of the near-duplicate shortlist are cached by content: a rerun scores nothing again, and a
changed image is scored anew."""

from __future__ import annotations

import numpy as np
import pytest

from shiftlab.curate.dedup import search


def _pixels(seed: int, n: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 3, 40, 40), dtype=np.uint8)


def test_a_rerun_reads_the_scores_and_a_changed_image_is_scored_again(tmp_path, monkeypatch):
    q, r = _pixels(0, 3), _pixels(1, 5)
    r[2] = q[1]  # an exact copy: DSSIM 0
    shortlist = np.array([[0, 1, 2], [2, 3, 4], [4, 0, 1]])
    kw = dict(window=7, device="cpu", cache_dir=tmp_path)
    first = search._dssim_neighbours(q, r, np.arange(3), shortlist, 2, **kw)
    assert first[1][1, 0] == 2 and first[0][1, 0] == pytest.approx(0.0, abs=1e-12)
    assert len(list(tmp_path.glob("dssim-*.npy"))) == 1

    def refuse(*a, **k):
        raise AssertionError("scored again although cached")

    real = search.dssim_pairs
    monkeypatch.setattr(search, "dssim_pairs", refuse)
    again = search._dssim_neighbours(q, r, np.arange(3), shortlist, 2, **kw)
    np.testing.assert_array_equal(again[0], first[0])
    np.testing.assert_array_equal(again[1], first[1])

    calls = []
    monkeypatch.setattr(search, "dssim_pairs", lambda *a, **k: calls.append(1) or real(*a, **k))
    r2 = r.copy()
    r2[4, 0, 0, 0] ^= 1  # one pixel of one shortlisted image
    search._dssim_neighbours(q, r2, np.arange(3), shortlist, 2, **kw)
    assert calls, "a changed image must be scored again"
    search._dssim_neighbours(q, r, np.arange(3), shortlist, 2, **{**kw, "window": 9})
    assert len(list(tmp_path.glob("dssim-*.npy"))) == 3, "another window is another entry"
