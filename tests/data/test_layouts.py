"""Readers: ImageFolder, ImageNetV2 numeric folders, revision JSON, CSV; layout detection; registry."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from helpers import write_image
from shiftlab.data.classes import Vocabulary, imagenet_1k
from shiftlab.data.layouts import (
    detect_layout,
    read_csv,
    read_dataset,
    read_imagefolder,
    read_imagenetv2_folders,
    read_revision_json,
)
from shiftlab.errors import InputError, UnknownNameError
from shiftlab.registry import register_dataset


def _folders(root: Path, spec: dict[str, list[str]]) -> Path:
    """``{folder: [file names]}`` → small distinct images (seeded by their position)."""
    k = 0
    for folder, files in spec.items():
        for f in files:
            write_image(root / folder / f, size=(12, 10), seed=k, fmt="PNG")
            k += 1
    return root


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def _imagenet_index(reference: Path) -> dict[str, int]:
    return {c["wnid"]: int(c["cid"]) for c in json.loads((reference / "imagenet" / "classes.json").read_text())}


# --- ImageFolder --------------------------------------------------------------------------------------

def test_imagefolder_wnid_folders_map_onto_imagenet(tmp_path):
    root = _folders(tmp_path / "set", {"n01443537": ["z.png"], "n01440764": ["b.png", "a.png"]})
    (root / "n01440764" / "README.txt").write_text("not an image")
    (root / "n01443537" / "labels.csv").write_text("x")
    (root / "n01443537" / ".DS_Store").write_text("hidden files are skipped silently")
    write_image(root / "stray.png", fmt="PNG")  # beside the class folders: belongs to no class
    m = read_imagefolder(root, progress=False)
    assert m.vocabulary is imagenet_1k()
    assert m.table["path"].tolist() == ["n01440764/a.png", "n01440764/b.png", "n01443537/z.png"]
    assert list(m.ids) == ["a.png", "b.png", "z.png"]
    assert list(m.labels) == [0, 0, 1]
    assert m.parameters == {"layout": "imagefolder", "ignored_files": 3}
    assert m.root == str(root.resolve()) and m.name == "set"
    assert m.table["sha256"].tolist() == [_sha(p) for p in m.abspaths()]


def test_imagefolder_wnid_uses_real_imagenet_index(tmp_path, reference):
    index = _imagenet_index(reference)
    root = _folders(tmp_path / "set", {"n04592741": ["wing.png"], "n01440764": ["tench.png"]})
    m = read_imagefolder(root, progress=False)
    assert index["n04592741"] == 908
    assert dict(zip(m.ids, m.labels)) == {"tench.png": 0, "wing.png": index["n04592741"]}
    assert [imagenet_1k()[i].wnid for i in range(1000)] == sorted(index, key=index.get)


def test_imagefolder_imagenet_class_names(tmp_path):
    root = _folders(tmp_path / "set", {"tench": ["1.png"], "goldfish": ["2.png"], "great_white_shark": ["3.png"]})
    m = read_imagefolder(root, progress=False)
    assert m.vocabulary.name == "imagenet-1k"
    assert dict(zip(m.ids, m.labels)) == {"1.png": 0, "2.png": 1, "3.png": 2}


def test_imagefolder_arbitrary_names_give_sorted_custom_vocabulary(tmp_path):
    root = _folders(tmp_path / "fruit", {"zebra": ["1.png"], "apple": ["2.png"], "mango": ["3.png", "4.png"]})
    m = read_imagefolder(root, progress=False)
    assert m.vocabulary.name != "imagenet-1k"
    assert m.vocabulary.names == ["apple", "mango", "zebra"]
    assert dict(zip(m.ids, m.labels)) == {"2.png": 0, "3.png": 1, "4.png": 1, "1.png": 2}
    # an explicit vocabulary wins
    vocab = Vocabulary.from_names(["zebra", "mango", "apple", "kiwi"], name="fruit4")
    given = read_imagefolder(root, vocabulary=vocab, progress=False)
    assert given.vocabulary == vocab and list(given.labels) == [2, 1, 1, 0]


def test_imagefolder_ambiguous_imagenet_name_asks_for_wnid(tmp_path):
    root = _folders(tmp_path / "birds", {"crane": ["1.png"], "tench": ["2.png"]})
    with pytest.raises(UnknownNameError, match="ambiguous.*wnid"):
        read_imagefolder(root, progress=False)


def test_imagefolder_ids_fall_back_to_paths_when_names_repeat(tmp_path):
    root = _folders(tmp_path / "set", {"apple": ["1.png"], "pear": ["1.png"]})
    m = read_imagefolder(root, progress=False)
    assert list(m.ids) == ["apple/1.png", "pear/1.png"]


def test_imagefolder_rejects_empty_input(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no class folders"):
        read_imagefolder(tmp_path / "empty", progress=False)
    (tmp_path / "noimg" / "cls").mkdir(parents=True)
    (tmp_path / "noimg" / "cls" / "notes.txt").write_text("x")
    with pytest.raises(InputError, match="no image files"):
        read_imagefolder(tmp_path / "noimg", progress=False)
    with pytest.raises(InputError, match="no such folder"):
        read_imagefolder(tmp_path / "absent", progress=False)


# --- ImageNetV2 numeric folders -----------------------------------------------------------------------

def test_imagenetv2_folders_are_class_indices(tmp_path):
    root = _folders(tmp_path / "v2", {
        "100": ["f100.jpeg"], "10": ["c.jpeg", "a.jpeg", "b.jpeg"], "2": ["e2.jpeg"],
        "1": ["d1.jpeg"], "0": ["e0.jpeg", "a0.jpeg"]})
    (root / "10" / "notes.txt").write_text("x")
    (root / "LICENSE").write_text("x")
    m = read_imagenetv2_folders(root, progress=False)
    assert list(m.labels) == [0, 0, 1, 2, 10, 10, 10, 100]  # "10" is class 10, not the 3rd folder
    assert list(m.ids) == ["a0", "e0", "d1", "e2", "a", "b", "c", "f100"]  # stems, sorted per folder
    assert m.table["path"].tolist()[4:7] == ["10/a.jpeg", "10/b.jpeg", "10/c.jpeg"]
    assert m.vocabulary is imagenet_1k() and m.parameters["ignored_files"] == 2
    assert detect_layout(root) == "imagenetv2"
    assert read_dataset(root, progress=False).content_hash == m.content_hash


def test_imagenetv2_folders_reject_bad_names(tmp_path):
    _folders(tmp_path / "big", {"1000": ["a.jpeg"]})
    with pytest.raises(InputError, match="beyond"):
        read_imagenetv2_folders(tmp_path / "big", progress=False)
    _folders(tmp_path / "named", {"3": ["a.jpeg"], "tench": ["b.jpeg"]})
    with pytest.raises(InputError, match="tench"):
        read_imagenetv2_folders(tmp_path / "named", progress=False)


# --- revision JSON ------------------------------------------------------------------------------------

EXPECTED_ROWS = {"imagenetv2-a-44": 10000, "imagenetv2-b-33": 10000, "imagenetv2-c-12": 10000,
                 "imagenet-validation-original": 50000, "imagenet-annotatedval20k-0": 20000}


def test_reference_revision_files_load_as_labels_only_manifests(reference):
    index = _imagenet_index(reference)
    files = sorted((reference / "imagenetv2").glob("*.json"))
    loaded = {}
    for f in files:
        doc = json.loads(f.read_text())
        if "image_filenames" not in doc:  # e.g. sampling_thresholds_a.json: not a revision
            with pytest.raises(InputError, match="not an ImageNetV2 revision"):
                read_revision_json(f, progress=False)
            continue
        m = read_revision_json(f, progress=False)
        loaded[m.name] = m
        assert len(m) == EXPECTED_ROWS[f.stem]
        assert list(m.ids) == [r[0] for r in doc["image_filenames"]]
        assert list(m.labels) == [index[r[1]] for r in doc["image_filenames"]]
        assert m.seed == doc["seed"] and not m.has_images
        assert m.parameters["layout"] == "revision" and "image_filenames" not in m.parameters
    assert set(loaded) == set(EXPECTED_ROWS)
    b = loaded["imagenetv2-b-33"]
    assert (b.dataset, b.variant, b.revision, b.parent) == ("imagenetv2", "b", "33", "imagenetv2-b-32")
    assert loaded["imagenetv2-a-44"].parent == "imagenetv2-a-43"
    assert loaded["imagenetv2-c-12"].seed == 940573347
    assert loaded["imagenetv2-a-44"].parameters["selection_frequency_threshold"] == 0.7
    orig = loaded["imagenet-validation-original"]
    assert (orig.variant, orig.revision, orig.parent) == (None, None, None)


def _revision(tmp_path: Path, ids_wnids) -> Path:
    f = tmp_path / "toy-x-2.json"
    f.write_text(json.dumps({"seed": 7, "starting_from": "toy-x-1.json",
                             "image_filenames": [list(r) for r in ids_wnids]}))
    return f


def test_revision_with_image_root_resolves_flat_and_nested_files(tmp_path):
    rows = [("aaa1", "n01443537"), ("bbb2", "n01440764"), ("ccc3", "n04592741")]
    f = _revision(tmp_path, rows)
    root = tmp_path / "images"
    write_image(root / "aaa1.jpeg", seed=1, fmt="JPEG")
    write_image(root / "n01440764" / "bbb2.jpeg", seed=2, fmt="JPEG")
    write_image(root / "n04592741" / "ccc3.jpeg", seed=3, fmt="JPEG")
    write_image(root / "n04592741" / "unlisted.jpeg", seed=4, fmt="JPEG")
    m = read_revision_json(f, root=root, progress=False)
    assert m.has_images and m.root == str(root.resolve())
    assert m.table["path"].tolist() == ["aaa1.jpeg", "n01440764/bbb2.jpeg", "n04592741/ccc3.jpeg"]
    assert list(m.labels) == [1, 0, 908]
    assert m.table["sha256"].tolist() == [_sha(p) for p in m.abspaths()]
    assert (m.dataset, m.variant, m.revision, m.parent, m.seed) == ("toy", "x", "2", "toy-x-1", 7)
    # the same test set with and without images: only the root-dependent columns differ
    labels_only = read_revision_json(f, progress=False)
    assert list(labels_only.ids) == list(m.ids) and list(labels_only.labels) == list(m.labels)


def test_revision_with_missing_files_names_the_count(tmp_path):
    f = _revision(tmp_path, [("aaa1", "n01443537"), ("bbb2", "n01440764"), ("ccc3", "n01440764")])
    write_image(tmp_path / "images" / "bbb2.jpeg", fmt="JPEG")
    with pytest.raises(InputError, match="2 of 3 images"):
        read_revision_json(f, root=tmp_path / "images", progress=False)


def test_malformed_revision_json_raises(tmp_path):
    for text in ("{not json", '{"image_filenames": [["only-id"]]}', "[1, 2]"):
        (tmp_path / "bad.json").write_text(text)
        with pytest.raises(InputError, match="not an ImageNetV2 revision"):
            read_revision_json(tmp_path / "bad.json", progress=False)
    (tmp_path / "bad.json").write_text('{"image_filenames": [["x", "n99999999"]]}')
    with pytest.raises(UnknownNameError, match="n99999999"):
        read_revision_json(tmp_path / "bad.json", progress=False)


# --- CSV ----------------------------------------------------------------------------------------------

def test_csv_with_integer_labels(tmp_path):
    write_image(tmp_path / "img" / "a.png", seed=1, fmt="PNG")
    write_image(tmp_path / "img" / "b.png", seed=2, fmt="PNG")
    (tmp_path / "set.csv").write_text("path,label,source\nimg/b.png,908,flickr\nimg/a.png,3,val\n")
    m = read_csv(tmp_path / "set.csv", progress=False)
    assert m.vocabulary is imagenet_1k() and m.name == "set"
    assert list(m.ids) == ["b.png", "a.png"] and list(m.labels) == [908, 3]  # CSV order kept
    assert m.table["source"].tolist() == ["flickr", "val"]
    assert m.table["sha256"].tolist() == [_sha(p) for p in m.abspaths()]
    assert m.parameters["layout"] == "csv"


def test_csv_with_name_labels_and_ids(tmp_path):
    for n in "abc":
        write_image(tmp_path / f"{n}.png", fmt="PNG")
    (tmp_path / "inet.csv").write_text("id,path,label\nx,a.png,goldfish\ny,b.png,tench\nz,c.png,n04592741\n")
    m = read_csv(tmp_path / "inet.csv", progress=False)
    assert m.vocabulary is imagenet_1k()
    assert list(m.ids) == ["x", "y", "z"] and list(m.labels) == [1, 0, 908]
    (tmp_path / "own.csv").write_text("path,label\na.png,pear\nb.png,apple\nc.png,-1\n")
    own = read_csv(tmp_path / "own.csv", progress=False)
    assert own.vocabulary.names == ["apple", "pear"]  # -1 means "unknown", not a class called "-1"
    assert list(own.labels) == [1, 0, -1]


def test_csv_with_root_and_missing_files(tmp_path):
    write_image(tmp_path / "imgs" / "a.png", fmt="PNG")
    (tmp_path / "lists").mkdir()
    (tmp_path / "lists" / "s.csv").write_text("path,label\na.png,1\n")
    assert read_csv(tmp_path / "lists" / "s.csv", root=tmp_path / "imgs", progress=False).abspaths()[0].is_file()
    with pytest.raises(InputError, match="1 listed file"):
        read_csv(tmp_path / "lists" / "s.csv", progress=False)  # relative to the CSV's folder
    (tmp_path / "lists" / "s2.csv").write_text("path,label\na.png,1\nb.png,2\nc.png,2\n")
    with pytest.raises(InputError, match="2 listed file"):
        read_csv(tmp_path / "lists" / "s2.csv", root=tmp_path / "imgs", progress=False)
    (tmp_path / "lists" / "nolabel.csv").write_text("path\na.png\n")
    with pytest.raises(InputError, match="path,label"):
        read_csv(tmp_path / "lists" / "nolabel.csv", progress=False)


# --- detection, read_dataset, registry ----------------------------------------------------------------

def test_detect_layout(tmp_path):
    _folders(tmp_path / "named", {"apple": ["a.png"]})
    _folders(tmp_path / "numeric", {"0": ["a.png"], "17": ["b.png"]})
    for name, layout in [("r.json", "revision"), ("c.CSV", "csv"), ("m.parquet", "manifest")]:
        (tmp_path / name).write_text("")
        assert detect_layout(tmp_path / name) == layout
    assert detect_layout(tmp_path / "named") == "imagefolder"
    assert detect_layout(tmp_path / "numeric") == "imagenetv2"
    (tmp_path / "x.txt").write_text("")
    with pytest.raises(InputError, match="--layout"):
        detect_layout(tmp_path / "x.txt")
    with pytest.raises(InputError):
        detect_layout(tmp_path / "absent")


def test_read_dataset_by_path_and_by_registered_name(tmp_path, workspace):
    root = _folders(tmp_path / "pets", {"tench": ["1.png"], "goldfish": ["2.png"]})
    by_path = read_dataset(root, progress=False)
    assert by_path.parameters["layout"] == "imagefolder"
    saved = by_path.save(tmp_path / "pets.parquet")
    assert read_dataset(saved).content_hash == by_path.content_hash  # .parquet ⇒ manifest

    register_dataset(by_path, workspace=workspace)
    again = read_dataset("pets", workspace=workspace)
    assert again.content_hash == by_path.content_hash and again.root == by_path.root
    assert list(again.ids) == list(by_path.ids)
    assert read_dataset("pets").content_hash == by_path.content_hash  # SHIFTLAB_HOME workspace
    moved = read_dataset("pets", workspace=workspace, root=tmp_path / "elsewhere")
    assert moved.root == str((tmp_path / "elsewhere").resolve())
    assert moved.content_hash == by_path.content_hash

    with pytest.raises(UnknownNameError, match="registered: pets"):
        read_dataset("no-such-set", workspace=workspace)
    with pytest.raises(UnknownNameError, match="unknown layout"):
        read_dataset(root, layout="tfrecord")
    with pytest.raises(InputError, match="expects a file"):
        read_dataset(root, layout="csv")


def test_read_dataset_passes_root_to_revision_and_csv(tmp_path):
    f = _revision(tmp_path, [("aaa1", "n01443537")])
    write_image(tmp_path / "images" / "aaa1.jpeg", fmt="JPEG")
    m = read_dataset(f, root=tmp_path / "images", progress=False)
    assert m.has_images and list(m.labels) == [1]
    assert not read_dataset(f, progress=False).has_images



def test_imagefolder_with_numbered_class_folders_orders_them_numerically(tmp_path):
    from shiftlab.data.layouts import read_imagefolder

    for c in ("0", "1", "2", "10"):
        write_image(tmp_path / "digits" / c / "a.png", seed=int(c))
    m = read_imagefolder(tmp_path / "digits", progress=False)
    assert m.vocabulary.names == ["0", "1", "2", "10"]
    assert dict(zip(m.table["path"].str.split("/").str[0], m.labels)) == {"0": 0, "1": 1, "2": 2, "10": 3}
