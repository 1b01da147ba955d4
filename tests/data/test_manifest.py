"""Manifest: validation, content hash, Parquet round trip and byte-identical saves."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from shiftlab.data.classes import Vocabulary, imagenet_1k
from shiftlab.data.manifest import Manifest
from shiftlab.errors import InputError


def _table(labels=(3, 0, 999, -1)) -> pd.DataFrame:
    n = len(labels)
    # deliberately not sorted by id: the manifest's order is the given order
    ids = [f"img{i}" for i in (7, 2, 9, 4, 1, 8, 3, 5, 6, 0)[:n]]
    return pd.DataFrame({
        "id": ids,
        "path": [f"sub/{i}.jpg" for i in ids],
        "sha256": [f"{k:064x}" for k in range(n)],
        "label": list(labels),
        "selection_frequency": [0.5, 0.25, 1.0, 0.0][:n],
        "source": ["flickr", "val", "flickr", "val"][:n],
    })


def _manifest(**kw) -> Manifest:
    args = {"table": _table(), "name": "toy-b-3", "dataset": "toy", "variant": "b", "revision": "3",
            "parent": "toy-b-2", "seed": 1234, "root": "/data/toy",
            "parameters": {"layout": "test", "threshold": 0.7, "bins": [0.2, 0.4]}}
    args.update(kw)
    return Manifest(**args)


def test_round_trip_keeps_rows_order_metadata_and_vocabulary(tmp_path):
    m = _manifest()
    back = Manifest.load(m.save(tmp_path / "m.parquet"))
    pd.testing.assert_frame_equal(back.table, m.table)
    assert list(back.ids) == ["img7", "img2", "img9", "img4"]
    assert list(back.labels) == [3, 0, 999, -1]
    for attr in ("name", "dataset", "variant", "revision", "parent", "seed", "parameters", "root"):
        assert getattr(back, attr) == getattr(m, attr), attr
    assert back.vocabulary is imagenet_1k()  # bundled vocabularies are stored by name
    assert back.content_hash == m.content_hash


def test_round_trip_of_custom_vocabulary_and_labels_only_manifest(tmp_path):
    vocab = Vocabulary.from_names(["zebra", "apple", "n01440764"], name="mine")
    t = pd.DataFrame({"id": ["a", "b", "c"], "path": [None] * 3, "sha256": [None] * 3, "label": [2, 0, 1]})
    m = Manifest(t, name="mine", vocabulary=vocab)
    back = Manifest.load(m.save(tmp_path / "m.parquet"))
    assert back.vocabulary == vocab
    assert back.vocabulary.names == ["zebra", "apple", "n01440764"]
    assert back.vocabulary[2].wnid == "n01440764"
    assert back.vocabulary.index_of("apple") == 1
    assert list(back.labels) == [2, 0, 1]
    assert back.table["path"].tolist() == [None] * 3
    assert not back.has_images
    with pytest.raises(InputError, match="labels only"):
        back.abspaths()


def test_a_file_read_again_is_an_independent_copy_and_a_rewritten_one_is_read_anew(tmp_path):
    """``Manifest.load`` keeps what it read per file version: each load is a copy a caller may change, and a
    file written again (another manifest, same path) is read anew."""
    path = _manifest().save(tmp_path / "m.parquet")
    a, b = Manifest.load(path), Manifest.load(path)
    assert a is not b and a.table is not b.table and a.content_hash == b.content_hash
    a.table.loc[0, "label"] = 5
    a.parameters["threshold"] = 0.1
    c = Manifest.load(path)
    assert c.table.loc[0, "label"] == 3 and c.parameters["threshold"] == 0.7
    assert b.table.loc[0, "label"] == 3 and c.content_hash == b.content_hash
    _manifest(table=_table(labels=(1, 1, 1, 1)), name="other").save(path)
    d = Manifest.load(path)
    assert d.name == "other" and list(d.labels) == [1, 1, 1, 1] and d.content_hash != c.content_hash


def test_metadata_holds_identity_and_hash(tmp_path):
    m = _manifest()
    meta = json.loads(pq.read_schema(m.save(tmp_path / "m.parquet")).metadata[b"shiftlab"])
    assert meta["name"] == "toy-b-3" and meta["variant"] == "b" and meta["revision"] == "3"
    assert meta["parent"] == "toy-b-2" and meta["seed"] == 1234
    assert meta["vocabulary"] == {"name": "imagenet-1k"}
    assert meta["parameters"]["threshold"] == 0.7
    assert meta["content_hash"] == m.content_hash and meta["n_images"] == 4


def test_numpy_seed_and_parameters_survive_the_round_trip(tmp_path):
    m = _manifest(seed=np.int64(5), parameters={"n": np.int32(3), "thr": np.float32(0.5), "ks": np.arange(3)})
    back = Manifest.load(m.save(tmp_path / "m.parquet"))
    assert back.seed == 5 and isinstance(back.seed, int)
    assert back.parameters == {"n": 3, "thr": 0.5, "ks": [0, 1, 2]}
    assert back.content_hash == m.content_hash == _manifest(seed=5, parameters=back.parameters).content_hash


def test_same_manifest_saves_byte_identical(tmp_path):
    a = _manifest().save(tmp_path / "a.parquet")
    b = _manifest().save(tmp_path / "b.parquet")  # an independently built, equal manifest
    assert a.read_bytes() == b.read_bytes()
    c = Manifest.load(a).save(tmp_path / "c.parquet")  # load + save changes nothing either
    assert c.read_bytes() == a.read_bytes()
    assert not list(tmp_path.glob(".*.tmp"))  # the atomic write leaves no temporary behind


def test_content_hash_follows_labels_not_root():
    m = _manifest()
    assert m.with_root("/elsewhere").content_hash == m.content_hash
    assert m.with_root("/elsewhere").root != m.root
    t = _table()
    t.loc[1, "label"] = 1
    assert _manifest(table=t).content_hash != m.content_hash
    assert _manifest(seed=1).content_hash != m.content_hash
    assert _manifest(parameters={}).content_hash != m.content_hash
    assert _manifest(table=_table().iloc[::-1]).content_hash != m.content_hash  # order is identity


def test_duplicate_ids_raise():
    t = _table()
    t.loc[2, "id"] = t.loc[0, "id"]
    with pytest.raises(InputError, match="duplicate id"):
        _manifest(table=t)


@pytest.mark.parametrize("label", [1000, -2])
def test_out_of_vocabulary_labels_raise(label):
    with pytest.raises(InputError, match="outside"):
        _manifest(table=_table(labels=(0, label)))
    vocab = Vocabulary.from_names(["a", "b"])
    with pytest.raises(InputError, match="outside"):
        _manifest(table=_table(labels=(0, 2)), vocabulary=vocab)


def test_missing_core_column_raises():
    with pytest.raises(InputError, match="sha256"):
        _manifest(table=_table().drop(columns="sha256"))


def _one_line_input_error(path) -> str:
    with pytest.raises(InputError) as ei:
        Manifest.load(path)
    msg = str(ei.value)
    assert "\n" not in msg and str(path) in msg
    return msg


def test_loading_non_manifest_files_raises_one_line_input_error(tmp_path):
    plain = tmp_path / "plain.parquet"
    pq.write_table(pa.table({"x": [1, 2]}), plain)
    assert "not a shiftlab manifest" in _one_line_input_error(plain)

    garbage = tmp_path / "garbage.parquet"
    garbage.write_bytes(b"PAR1 this is\nnot parquet at all\n" * 10)
    assert "not a readable Parquet manifest" in _one_line_input_error(garbage)

    _one_line_input_error(tmp_path / "absent.parquet")


def test_loading_parquet_with_broken_metadata_raises_input_error(tmp_path):
    table = pa.Table.from_pandas(_table(), preserve_index=False)
    broken = tmp_path / "broken.parquet"
    pq.write_table(table.replace_schema_metadata({b"shiftlab": b"{not json"}), broken)
    _one_line_input_error(broken)
    nameless = tmp_path / "nameless.parquet"
    pq.write_table(table.replace_schema_metadata({b"shiftlab": b'{"seed": 1}'}), nameless)
    _one_line_input_error(nameless)


def test_subset_keeps_order_and_records_parent():
    m = _manifest()
    s = m.subset(m.labels >= 0, name="toy-clean")
    assert list(s.ids) == ["img7", "img2", "img9"]
    assert s.parent == "toy-b-3" and s.name == "toy-clean"
    assert list(m.subset(pd.Index([2, 0]).to_numpy()).ids) == ["img9", "img7"]
