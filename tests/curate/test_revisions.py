"""ImageNetV2 revision files (SPECS S1.5): names, keys, byte-identical output, parents, manifests."""

from __future__ import annotations

import json
from collections import Counter

import pandas as pd
import pytest

from shiftlab.curate.revisions import (
    KEYS,
    dumps_revision,
    make_revision,
    new_revision_name,
    next_revision_name,
    parse_revision_name,
    previous_by_class,
    read_revision,
    revision_manifest,
    revision_name,
    write_revision,
)
from shiftlab.data.classes import imagenet_1k
from shiftlab.data.layouts import read_revision_json
from shiftlab.errors import InputError

REFS = {"a": "imagenetv2-a-44", "b": "imagenetv2-b-33", "c": "imagenetv2-c-12"}
FIXED = {"time_string": "2026-01-01_00:00:00_UTC", "username": "tester"}


def cand(i, k, f, n=10, bl=False, nd=False, rev=True):
    return {"id": i, "class": k, "frequency": f, "n_annotations": n, "blacklisted": bl, "near_duplicate": nd,
            "reviewed": rev}


def small_pool(n_classes=3, per=16):
    # frequencies 0.62, 0.645, …, 0.995: 12 per class at ≥ 0.7, 4 more at ≥ 0.6, 4 at ≥ 0.9
    return pd.DataFrame([cand(f"c{k}_{j:02d}", k, 0.62 + 0.025 * j) for k in range(n_classes) for j in range(per)])


def small_val(n_classes=3):
    return pd.DataFrame([{"id": f"v{k}_{j}", "class": k, "frequency": 0.62 + 0.025 * (j % 16),
                          "n_annotations": 10} for k in range(n_classes) for j in range(32)])


def build(variant, seed=1, **kw):
    kw.setdefault("validation", small_val())
    if variant == "a":
        kw.setdefault("class_thresholds", {"n01443537": 0.65})
    return make_revision(f"toy-{variant}-1", small_pool(), seed=seed, **FIXED, **kw)


# --- names ------------------------------------------------------------------------------------------------
def test_names():
    assert revision_name("imagenetv2", "b", 33) == "imagenetv2-b-33"
    assert parse_revision_name("imagenetv2-b-33") == ("imagenetv2", "b", 33)
    assert parse_revision_name("/x/my-set-a-2.json") == ("my-set", "a", 2)
    assert next_revision_name("imagenetv2-c-11") == "imagenetv2-c-12"
    for bad in ("imagenetv2", "imagenetv2-d-3", "imagenetv2-b-x"):
        with pytest.raises(InputError):
            parse_revision_name(bad)
    with pytest.raises(InputError):
        revision_name("x", "q", 1)


def test_new_revision_name_follows_its_parent_file(tmp_path):
    assert new_revision_name("world", "b") == "world-b-0"
    (tmp_path / "world-b-4.json").write_text("{}")
    assert new_revision_name("world", "b", tmp_path / "world-b-4.json") == "world-b-5"
    with pytest.raises(InputError, match="not of world-a"):
        new_revision_name("world", "a", tmp_path / "world-b-4.json")
    with pytest.raises(InputError, match="no such revision file"):
        new_revision_name("world", "b", tmp_path / "world-b-9.json")


# --- keys and format --------------------------------------------------------------------------------------
@pytest.mark.parametrize("variant", ["a", "b", "c"])
def test_written_file_has_the_reference_keys_in_order(variant, reference, tmp_path):
    ref = json.loads((reference / "imagenetv2" / f"{REFS[variant]}.json").read_text())
    assert KEYS[variant] == tuple(ref)
    rev = build(variant, parent={"image_filenames": [], "output_filename": "toy-x-0.json"})
    path = rev.write(tmp_path)
    assert path.name == "toy-" + variant + "-1.json"
    doc = json.loads(path.read_text())
    assert list(doc) == list(ref)
    assert doc["sampling_function"] == ref["sampling_function"]
    assert doc["near_duplicate_review_targets"] == ref["near_duplicate_review_targets"]
    for k in ref:  # same value types as the released files
        if k != "starting_from":
            assert type(doc[k]) is type(ref[k]), k


def test_document_contents():
    rev = build("a")
    d = rev.doc
    assert d["target_size"] == 30 and d["is_valid"] is True and d["seed"] == 1
    assert d["time_string"] == FIXED["time_string"] and d["username"] == "tester"
    assert d["wnid_thresholds"] == {"n01443537": 0.65}
    assert "starting_from" not in d and d["output_filename"] == "toy-a-1.json"  # a first revision, as ImageNetV2
    wnids = imagenet_1k().wnids
    assert Counter(w for _, w in d["image_filenames"]) == {wnids[0]: 10, wnids[1]: 10, wnids[2]: 10}
    b = build("b", allow_upward_sampling=True).doc
    assert b["histogram_bins"] == [0.2, 0.4, 0.6, 0.8] and b["allow_upward_sampling"] is True
    assert b["min_num_val_images_per_wnid"] == 20


def test_class_threshold_overrides_by_index_or_name_agree():
    a = build("a", class_thresholds={1: 0.9})
    b = build("a", class_thresholds={"n01443537": 0.9})
    assert a.dumps() == b.dumps()
    # class 1 (n01443537) has only 4 images at ≥ 0.9
    assert not a.is_valid and a.result.short_classes == [1] and a.doc["wnid_thresholds"] == {"n01443537": 0.9}
    plain = build("a", class_thresholds=None)
    assert plain.is_valid and plain.doc["wnid_thresholds"] == {}


def test_thresholds_only_for_a():
    with pytest.raises(InputError):
        build("c", class_thresholds={0: 0.5})


def test_short_class_is_saved_with_is_valid_false(tmp_path):
    p = small_pool()
    p = p[~((p["class"] == 2) & (p["id"] > "c2_05"))]  # class 2 keeps 6 images
    rev = make_revision("toy-c-1", p, seed=1, **FIXED)
    path = rev.write(tmp_path / "out.json")
    doc = read_revision(path)
    assert doc["is_valid"] is False and len(doc["image_filenames"]) == 26 and doc["target_size"] == 30


# --- determinism ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("variant", ["a", "b", "c"])
def test_same_inputs_and_seed_give_a_byte_identical_file(variant, tmp_path):
    p1 = build(variant).write(tmp_path / "1.json")
    p2 = build(variant).write(tmp_path / "2.json")
    p3 = build(variant, seed=2).write(tmp_path / "3.json")
    assert p1.read_bytes() == p2.read_bytes()
    assert p1.read_bytes() != p3.read_bytes()
    same = [sorted(map(tuple, read_revision(p)["image_filenames"])) for p in (p1, p3)]
    if variant == "c":  # deterministic choice; only the order differs
        assert same[0] == same[1]


# --- parents ----------------------------------------------------------------------------------------------
def test_new_revision_from_a_parent_file_replaces_only_changed_images(tmp_path):
    first = make_revision("toy-a-1", small_pool(), seed=5, **FIXED)
    parent_path = first.write(tmp_path)
    old = {i for i, _ in first.doc["image_filenames"]}
    gone = [min(i for i in old if i.startswith(f"c{k}_")) for k in range(3)]
    p = small_pool()
    p.loc[p["id"].isin(gone), "near_duplicate"] = True
    child = make_revision(next_revision_name(first.name), p, seed=6, parent=parent_path, **FIXED)
    new = {i for i, _ in child.doc["image_filenames"]}
    assert child.doc["starting_from"] == "toy-a-1.json" and child.name == "toy-a-2"
    assert old - set(gone) <= new and not new & set(gone) and len(new) == len(old)
    m = child.manifest()
    assert m.parent == "toy-a-1" and m.variant == "a" and m.revision == "2"


def test_parent_as_rows_or_dict():
    rows = [["x1", "n01440764"], ["x2", "n01443537"]]
    assert previous_by_class(rows) == {0: ["x1"], 1: ["x2"]}
    assert previous_by_class({"image_filenames": rows}) == {0: ["x1"], 1: ["x2"]}
    assert previous_by_class(rows, ["n01440764", "n01443537"]) == {0: ["x1"], 1: ["x2"]}
    with pytest.raises(InputError):
        previous_by_class([["x", "nope"]], ["n01440764"])


def test_custom_class_names():
    p = small_pool(2, 10)
    rev = make_revision("mine-c-0", p, seed=0, class_names={0: "cat", 1: "dog"}, **FIXED)
    assert {w for _, w in rev.doc["image_filenames"]} == {"cat", "dog"}
    with pytest.raises(InputError, match="no name"):
        make_revision("mine-c-0", p, seed=0, class_names=["cat"], **FIXED)


def test_written_revision_loads_as_a_manifest(tmp_path):
    rev = build("b")
    path = rev.write(tmp_path)
    m = read_revision_json(path)
    assert m.ids.tolist() == [i for i, _ in rev.doc["image_filenames"]]
    assert m.labels.tolist() == [k for _, k in rev.result.images]
    assert m.content_hash == rev.manifest().content_hash
    assert m.seed == 1 and m.parameters["sampling_function"] == "sample_wnid_histogram"


# --- the released revision files --------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(REFS.values()))
def test_reference_revisions_round_trip(name, reference, tmp_path):
    src = reference / "imagenetv2" / f"{name}.json"
    doc = read_revision(src)
    assert dumps_revision(doc) == src.read_text()  # our writer reproduces the released bytes
    out = write_revision(doc, tmp_path)
    assert out.name == f"{name}.json" and out.read_bytes() == src.read_bytes()
    assert read_revision(out)["image_filenames"] == doc["image_filenames"]
    m = read_revision_json(src)
    assert len(m) == 10000 and len(set(m.labels.tolist())) == 1000
    assert m.ids.tolist() == [r[0] for r in doc["image_filenames"]]
    assert revision_manifest(doc, name=name).content_hash == m.content_hash
    assert read_revision_json(out).content_hash == m.content_hash


def test_resampling_a_reference_revision_keeps_every_still_eligible_image(reference):
    src = reference / "imagenetv2" / "imagenetv2-a-44.json"
    parent = read_revision(src)
    vocab = imagenet_1k()
    rows = [cand(i, vocab.index_of(w), 0.9) for i, w in parent["image_filenames"]]
    dropped = parent["image_filenames"][0]
    rows[0]["blacklisted"] = True
    rows.append(cand("replacement", vocab.index_of(dropped[1]), 0.75))
    child = make_revision("imagenetv2-a-45", pd.DataFrame(rows), seed=parent["seed"], parent=src,
                          class_thresholds=json.loads((src.parent / "sampling_thresholds_a.json").read_text()),
                          **FIXED)
    assert child.is_valid and child.doc["starting_from"] == "imagenetv2-a-44.json"
    assert child.doc["wnid_thresholds"] == parent["wnid_thresholds"]
    expect = Counter(map(tuple, parent["image_filenames"][1:])) + Counter([("replacement", dropped[1])])
    assert Counter(map(tuple, child.doc["image_filenames"])) == expect


def test_read_class_thresholds(reference, tmp_path):
    from shiftlab.curate.revisions import read_class_thresholds

    t = read_class_thresholds(reference / "imagenetv2" / "sampling_thresholds_a.json")
    assert t == {"n03014705": 0.6, "n02090379": 0.6, "n03804744": 0.5}
    bad = tmp_path / "bad.json"
    bad.write_text('{"n01440764": 7}')
    with pytest.raises(InputError):
        read_class_thresholds(bad)
