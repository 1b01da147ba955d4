"""The PredictionStore on its own: chunks of float16 logits (and float32 features) go to disk atomically,
a cell is read only once it is complete, and a reopened cell resumes with exactly the missing chunks."""

from __future__ import annotations

import hashlib
import json
import threading

import numpy as np
import pandas as pd
import pytest

from shiftlab.data.manifest import Manifest
from shiftlab.data.recipes import Recipe
from shiftlab.errors import IncompleteError
from shiftlab.predict.store import PredictionStore

MODEL = "python:/some/where/nets.py:tiny?width=8&seed=1"
N, K, D, C = 10, 3, 5, 4  # rows, classes, feature width, chunk size → chunks of 4, 4 and 2 rows


def _manifest(ids, name: str = "toy") -> Manifest:
    table = pd.DataFrame({"id": ids, "path": [None] * len(ids),
                          "sha256": [hashlib.sha256(i.encode()).hexdigest() for i in ids], "label": 0})
    return Manifest(table, name=name)


@pytest.fixture
def manifest() -> Manifest:
    return _manifest([f"img{i:02d}" for i in range(N)])


@pytest.fixture
def store(workspace) -> PredictionStore:
    return PredictionStore(workspace)


def _data(seed: int = 0):
    """float64 logits that float16 must round, a NaN row (an undecodable image), features."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 3, (N, K)) + 1 / 3
    logits[7] = np.nan  # an undecodable image
    feats = rng.normal(size=(N, D))
    return logits, feats, {7: "truncated"}


def _write(cell, logits, bad, feats=None, chunks=None):
    for i in range(cell.n_chunks) if chunks is None else chunks:
        lo, hi = cell.chunk_range(i)
        cell.write_chunk(i, logits[lo:hi], {r: s for r, s in bad.items() if lo <= r < hi},
                         None if feats is None else feats[lo:hi])


def test_chunk_ranges_partition_the_rows(store, manifest):
    """Chunks are consecutive [i·C, (i+1)·C) ranges, the last one short, covering every row once."""
    cell = store.cell(MODEL, manifest, Recipe(), chunk_size=C)
    assert (cell.n, cell.chunk_size, cell.n_chunks) == (N, C, 3)
    assert [cell.chunk_range(i) for i in range(cell.n_chunks)] == [(0, 4), (4, 8), (8, 10)]


@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")
def test_written_chunks_read_back_as_numpys_float16_cast(store, manifest):
    """finalize() and load() give the logits as numpy casts them to float16 (rounding, overflow to inf,
    NaN rows kept), in row order across chunks; the bad rows come back with their reasons."""
    logits, _, bad = _data()
    logits[1, 2] = 1e6  # beyond float16's range
    cell = store.cell(MODEL, manifest, Recipe(), chunk_size=C)
    with cell.writing():
        _write(cell, logits, bad)
        done = cell.finalize()
    expected = logits.astype(np.float16)
    assert np.isinf(expected[1, 2]) and not np.array_equal(expected.astype(np.float64), logits)  # cast is lossy
    for got in (done, cell.load()):
        assert got.logits.dtype == np.float16 and got.logits.shape == (N, K)
        np.testing.assert_array_equal(got.logits, expected)
        assert got.features is None
        assert got.bad == {7: "truncated"}
        np.testing.assert_array_equal(got.valid, np.arange(N) != 7)


def test_bad_rows_of_several_chunks_are_merged(store, manifest):
    """Undecodable rows given per chunk (as manifest rows) are all listed after finalize, reasons intact."""
    logits, _, _ = _data()
    bad = {0: "empty file", 5: "not an image", 9: "trünçated"}
    cell = store.cell(MODEL, manifest, Recipe(), chunk_size=C)
    with cell.writing():
        _write(cell, logits, bad)
        cell.finalize()
    assert cell.load().bad == bad
    assert json.loads((cell.dir / "complete.json").read_text())["bad"] == {str(k): v for k, v in bad.items()}
    np.testing.assert_array_equal(cell.load().valid, ~np.isin(np.arange(N), [0, 5, 9]))


def test_incomplete_cell_is_never_read(store, manifest):
    """Before finalize() (no chunk, some chunks, even all chunks) load() raises IncompleteError with a
    one-line message naming the cell and saying to run again; is_complete() is False throughout."""
    logits, _, bad = _data()
    cell = store.cell(MODEL, manifest, Recipe(), chunk_size=C)

    def assert_incomplete():
        assert not cell.is_complete() and not cell.is_complete(features=True)
        with pytest.raises(IncompleteError) as e:
            cell.load()
        msg = str(e.value)
        assert str(cell.dir) in msg and "not complete" in msg and "again" in msg and "\n" not in msg

    assert_incomplete()
    with cell.writing():
        assert_incomplete()
        _write(cell, logits, bad, chunks=[0])
        assert_incomplete()
        _write(cell, logits, bad, chunks=[1, 2])
        assert_incomplete()
        cell.finalize()
    assert cell.is_complete()
    cell.load()


def test_finalize_with_a_missing_chunk_fails_and_leaves_the_cell_unreadable(store, manifest):
    """finalize() on a cell with a chunk missing raises and writes no complete.json nor logits.npy."""
    logits, _, bad = _data()
    cell = store.cell(MODEL, manifest, Recipe(), chunk_size=C)
    with cell.writing():
        _write(cell, logits, bad, chunks=[0, 2])
        with pytest.raises(FileNotFoundError):
            cell.finalize()
    assert not (cell.dir / "complete.json").exists() and not (cell.dir / "logits.npy").exists()
    with pytest.raises(IncompleteError):
        cell.load()


def test_complete_json_is_written_last(store, manifest, monkeypatch):
    """If finalize() dies while writing the consolidated arrays, complete.json is not there, so the cell
    stays unreadable (and the chunks stay for the next run)."""
    import shiftlab.predict.store as store_mod

    logits, feats, bad = _data()
    cell = store.cell(MODEL, manifest, Recipe(), chunk_size=C)

    def dying_save(path, array):
        raise OSError(f"killed while writing {path.name}")

    monkeypatch.setattr(store_mod, "atomic_save_npy", dying_save)
    with cell.writing():
        _write(cell, logits, bad, feats)
        with pytest.raises(OSError, match="killed while writing"):
            cell.finalize()
    assert not (cell.dir / "complete.json").exists()
    assert not cell.is_complete()
    with pytest.raises(IncompleteError):
        cell.load()
    assert cell.pending_chunks(features=True) == []


def test_reopened_cell_resumes_with_exactly_the_missing_chunks(store, manifest):
    """A cell reopened (a new object, as a new process would make) reports as pending exactly the chunks
    not yet written; the chunks already there are not rewritten, and the result equals one uninterrupted run."""
    logits, _, bad = _data()
    first = store.cell(MODEL, manifest, Recipe(), chunk_size=3)  # chunks of 3, 3, 3, 1
    with first.writing():
        assert first.pending_chunks() == [0, 1, 2, 3]
        _write(first, logits, bad, chunks=[0, 2])
    written = {f.name: f.stat().st_mtime_ns for f in (first.dir / "chunks").iterdir()}
    assert sorted(written) == ["000000.npz", "000002.npz"]

    again = store.cell(MODEL, manifest, Recipe(), chunk_size=3)
    assert again.dir == first.dir
    assert again.pending_chunks() == [1, 3]
    with again.writing():
        _write(again, logits, bad, chunks=again.pending_chunks())
        assert again.pending_chunks() == []
        again.finalize()
    assert {f.name: f.stat().st_mtime_ns for f in (first.dir / "chunks").iterdir() if f.name in written} == written
    np.testing.assert_array_equal(again.load().logits, logits.astype(np.float16))


def test_reopening_with_another_chunk_size_keeps_the_stored_chunking(store, manifest):
    """The chunk size in an existing cell.json wins over the one asked for, so resumed chunks line up."""
    logits, _, bad = _data()
    first = store.cell(MODEL, manifest, Recipe(), chunk_size=C)
    with first.writing():
        _write(first, logits, bad, chunks=[1])
    again = store.cell(MODEL, manifest, Recipe(), chunk_size=7)
    assert (again.chunk_size, again.n_chunks, again.chunk_range(1)) == (C, 3, (4, 8))
    assert again.pending_chunks() == [0, 2]
    with again.writing():
        _write(again, logits, bad, chunks=again.pending_chunks())
        again.finalize()
    assert json.loads((again.dir / "complete.json").read_text())["chunk_size"] == C
    np.testing.assert_array_equal(again.load().logits, logits.astype(np.float16))


def test_stray_temp_file_is_not_a_chunk_and_is_cleaned_up(store, manifest):
    """A temporary file left by a killed writer (or any other partial name) does not count as a chunk;
    entering writing() deletes the ``.*.tmp`` leftovers and keeps the real chunks."""
    logits, _, bad = _data()
    cell = store.cell(MODEL, manifest, Recipe(), chunk_size=C)
    with cell.writing():
        _write(cell, logits, bad, chunks=[0])
    chunks = cell.dir / "chunks"
    stray = chunks / ".000001.npz.k2j4h1.tmp"  # the name atomic_save_npz's temp file gets
    stray.write_bytes(b"PK\x03\x04 half a zip")
    (chunks / "000002.npz.partial").write_bytes(b"")
    assert cell.pending_chunks() == [1, 2]
    with cell.writing():
        assert not stray.exists()
        assert (chunks / "000000.npz").is_file()
        assert cell.pending_chunks() == [1, 2]


def test_features_are_stored_and_read_back_on_request(store, manifest):
    """Features given with the chunks come back as float32 (numpy's cast) only when asked for, and the
    cell then counts as complete with features."""
    logits, feats, bad = _data()
    cell = store.cell(MODEL, manifest, Recipe(), chunk_size=C)
    with cell.writing():
        _write(cell, logits, bad, feats)
        assert cell.pending_chunks(features=True) == []
        done = cell.finalize()
    assert cell.is_complete(features=True)
    assert json.loads((cell.dir / "complete.json").read_text())["features"] is True
    for got in (done, cell.load(features=True)):
        assert got.features.dtype == np.float32 and got.features.shape == (N, D)
        np.testing.assert_array_equal(got.features, feats.astype(np.float32))
        np.testing.assert_array_equal(got.logits, logits.astype(np.float16))
    assert cell.load().features is None


def test_cell_without_features_is_incomplete_for_a_features_request(store, manifest):
    """A cell finalized without features is complete for logits but not for features: load(features=True)
    raises IncompleteError, and every chunk is pending again for a features run."""
    logits, feats, bad = _data()
    cell = store.cell(MODEL, manifest, Recipe(), chunk_size=C)
    with cell.writing():
        _write(cell, logits, bad)
        cell.finalize()
    assert cell.is_complete() and not cell.is_complete(features=True)
    assert cell.pending_chunks() == [] and cell.pending_chunks(features=True) == [0, 1, 2]
    with pytest.raises(IncompleteError, match="without features"):
        cell.load(features=True)
    assert not (cell.dir / "features.npy").exists()

    with cell.writing():  # one chunk redone with features: the others are still pending for features
        _write(cell, logits, bad, feats, chunks=[1])
        assert cell.pending_chunks(features=True) == [0, 2]
        _write(cell, logits, bad, feats, chunks=[0, 2])
        cell.finalize()
    np.testing.assert_array_equal(cell.load(features=True).features, feats.astype(np.float32))


def test_cell_folder_and_recorded_metadata(store, manifest, workspace):
    """The cell lives at predictions/<model slug>/<image hash[:20]>-<recipe key>/; cell.json records model,
    manifest name, n, recipe and chunk size; complete.json adds features, num_classes and the bad rows."""
    recipe = Recipe(resize=32, crop=28)
    logits, _, bad = _data()
    cell = store.cell(MODEL, manifest, recipe, chunk_size=C)
    assert cell.dir.parent.parent == workspace.predictions
    assert cell.dir.name == f"{manifest.image_hash[:20]}-{recipe.key()}"
    slug = cell.dir.parent.name
    assert not set("/:?&") & set(slug) and slug.endswith("nets.py_tiny_width_8_seed_1")
    with cell.writing():
        _write(cell, logits, bad)
        cell.finalize()
    meta = {"model": MODEL, "manifest": "toy", "n": N, "recipe": recipe.to_json(), "chunk_size": C}
    assert json.loads((cell.dir / "cell.json").read_text()) == meta
    assert json.loads((cell.dir / "complete.json").read_text()) == {
        **meta, "features": False, "num_classes": K, "bad": {"7": "truncated"}}
    assert Recipe.from_json(json.loads((cell.dir / "cell.json").read_text())["recipe"]) == recipe
    assert sorted(p.name for p in cell.dir.iterdir()) == ["cell.json", "chunks", "complete.json", "lock", "logits.npy"]
    assert not list(cell.dir.rglob("*.tmp"))


def test_cells_are_keyed_by_model_images_and_recipe(store, manifest):
    """Another model, another recipe, or the same ids in another order is another cell; the manifest's name
    alone is not part of the key (same images, same cell)."""
    ids = list(manifest.ids)
    base = store.cell(MODEL, manifest, Recipe()).dir
    assert store.cell(MODEL, _manifest(ids, name="renamed"), Recipe()).dir == base
    others = [store.cell(MODEL + "x", manifest, Recipe()).dir,
              store.cell(MODEL, manifest, Recipe(crop=200)).dir,
              store.cell(MODEL, _manifest(ids[::-1]), Recipe()).dir,
              store.cell(MODEL, _manifest(ids[:-1]), Recipe()).dir]
    assert len({base, *others}) == 5


def test_writers_of_one_cell_take_turns(store, manifest):
    """writing() is exclusive: a second writer of the same cell waits until the first leaves, and then
    finds it complete."""
    logits, _, bad = _data()
    first = store.cell(MODEL, manifest, Recipe(), chunk_size=C)
    second = store.cell(MODEL, manifest, Recipe(), chunk_size=C)
    entered, seen = threading.Event(), []

    def other():
        with second.writing():
            entered.set()
            seen.append(second.is_complete())

    with first.writing():
        t = threading.Thread(target=other, daemon=True)
        t.start()
        assert not entered.wait(0.3), "second writer got in while the first held the cell"
        _write(first, logits, bad)
        first.finalize()
    assert entered.wait(4)
    t.join(4)
    assert seen == [True]
