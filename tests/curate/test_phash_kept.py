"""pHash bits of a whole decoded cache are kept beside its file (issue 19.3) and follow the file's version."""

from __future__ import annotations

import os

import numpy as np

from shiftlab.curate.dedup.features import _phash_bits, phash_bits


def test_bits_are_kept_for_a_whole_file_and_recomputed_when_it_changes(tmp_path, monkeypatch):
    import shiftlab.curate.dedup.features as F

    rng = np.random.default_rng(0)
    a = (rng.random((6, 3, 32, 32)) * 255).astype(np.uint8)
    np.save(tmp_path / "pixels.npy", a)
    m = np.load(tmp_path / "pixels.npy", mmap_mode="r")
    bits = phash_bits(m)
    np.testing.assert_array_equal(bits, _phash_bits(a))
    assert len(list(tmp_path.glob("pixels.npy.*.phash64.npy"))) == 1
    # kept: the next call reads them back
    monkeypatch.setattr(F, "_phash_bits", lambda p: (_ for _ in ()).throw(AssertionError("computed again")))
    np.testing.assert_array_equal(phash_bits(np.load(tmp_path / "pixels.npy", mmap_mode="r")), bits)
    monkeypatch.undo()
    # some rows, or an array in memory, are computed and not kept
    np.testing.assert_array_equal(phash_bits(m[:3]), bits[:3])
    np.testing.assert_array_equal(phash_bits(np.array(a)), bits)
    assert len(list(tmp_path.glob("*.phash64.npy"))) == 1
    # the file rewritten (another version): new bits, not the kept ones
    b = a[::-1].copy()
    np.save(tmp_path / "pixels.npy", b)
    st = os.stat(tmp_path / "pixels.npy")
    os.utime(tmp_path / "pixels.npy", ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    np.testing.assert_array_equal(phash_bits(np.load(tmp_path / "pixels.npy", mmap_mode="r")), bits[::-1])
