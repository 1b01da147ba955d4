"""Candidate-pool import (SPECS S1.1): ids, scaled and annotator copies, blacklist, validation first."""

from __future__ import annotations

import hashlib
import json
import shutil

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from helpers import write_image
from shiftlab.curate.candidates import candidate_id, import_candidates
from shiftlab.data.classes import digits, imagenet_1k
from shiftlab.data.manifest import Manifest
from shiftlab.errors import InputError

VOC = digits()


def _folder(root, n=3):
    for c in ("three", "five"):
        for i in range(n):
            write_image(root / c / f"{c}_{i}.png", size=(60, 40), seed=hash(c) % 100 + i)
    return root


def test_folder_import(tmp_path):
    src = _folder(tmp_path / "src")
    (src / "five" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    m, bl = import_candidates(src, vocabulary=VOC, out_dir=tmp_path / "out", name="pool", progress=False)
    assert len(m) == 6
    assert bl == {candidate_id("five/broken.jpg"): bl[candidate_id("five/broken.jpg")]}
    assert json.loads((tmp_path / "out" / "blacklist.json").read_text()) == bl
    assert m.parameters["n_input"] == 7 and m.parameters["n_blacklisted"] == 1
    t = m.table.set_index("source_id")
    assert t.loc["three/three_0.png", "id"] == hashlib.sha1(b"three/three_0.png").hexdigest()
    assert t.loc["three/three_0.png", "label"] == 3 and t.loc["five/five_2.png", "label"] == 5
    assert t.loc["three/three_0.png", "original_path"] == str((src / "three" / "three_0.png").resolve())
    assert (t.width == 60).all() and (t.height == 40).all()
    for p, a in zip(m.abspaths(), m.table.annotator_path):
        with Image.open(p) as im:
            assert im.size == (256, 256) and im.mode == "RGB"
        with Image.open(tmp_path / "out" / a) as im:
            assert im.size == (500, 333)
    from shiftlab.data.layouts import sha256_file
    assert list(m.table.sha256) == [sha256_file(p) for p in m.abspaths()]
    assert Manifest.load(tmp_path / "out" / "pool.parquet").content_hash == m.content_hash


def test_deterministic(tmp_path):
    src = _folder(tmp_path / "src")
    out = tmp_path / "out"
    import_candidates(src, vocabulary=VOC, out_dir=out, name="pool", progress=False)
    first = (out / "pool.parquet").read_bytes()
    scaled = {p.name: p.read_bytes() for p in (out / "scaled").iterdir()}
    import_candidates(src, vocabulary=VOC, out_dir=out, name="pool", progress=False)
    assert (out / "pool.parquet").read_bytes() == first
    assert {p.name: p.read_bytes() for p in (out / "scaled").iterdir()} == scaled


def test_unknown_class_writes_nothing(tmp_path):
    src = _folder(tmp_path / "src")
    write_image(src / "eleven" / "x.png")
    with pytest.raises(InputError, match="'eleven'") as e:
        import_candidates(src, vocabulary=VOC, out_dir=tmp_path / "out", name="pool", progress=False)
    assert "\n" not in str(e.value)
    assert not (tmp_path / "out").exists()


def test_csv_import_with_metadata(tmp_path):
    img = tmp_path / "imgs"
    write_image(img / "a.png", size=(30, 90), mode="L")  # grey, tall
    rgba = np.zeros((20, 20, 4), np.uint8)
    rgba[..., 0] = 200
    Image.fromarray(rgba, "RGBA").save(img / "b.png")
    # EXIF orientation 6 (rotate 90°): stored 80×40, shown 40×80
    im = Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 80, 3), dtype=np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 6
    im.save(img / "c.jpg", exif=exif)
    pd.DataFrame({"path": ["imgs/a.png", "imgs/b.png", "imgs/c.jpg", "imgs/gone.png"],
                  "class": ["n01440764", "tench", "n01443537", "n01443537"],
                  "source_id": ["flickr:1", "flickr:2", "", "flickr:4"],
                  "date_taken": ["2012-01-01", "", "2013-05-06", ""],
                  "search_key": ["tench", "tench fish", "goldfish", "goldfish"],
                  "url": ["http://x/1", "http://x/2", "http://x/3", "http://x/4"],
                  "width": ["30", "20", "80", ""], "height": ["90", "20", "40", ""]}).to_csv(
        tmp_path / "cands.csv", index=False)
    m, bl = import_candidates(tmp_path / "cands.csv", vocabulary=imagenet_1k(), out_dir=tmp_path / "out",
                              name="c", progress=False)
    assert bl == {candidate_id("flickr:4"): "missing"}
    t = m.table.set_index("source_id")
    assert set(t.index) == {"flickr:1", "flickr:2", "imgs/c.jpg"}  # empty source id → the path
    assert t.loc["flickr:1", "id"] == hashlib.sha1(b"flickr:1").hexdigest()
    assert t.loc["flickr:2", "label"] == 0 and t.loc["imgs/c.jpg", "label"] == 1
    assert t.loc["flickr:1", "search_key"] == "tench" and t.loc["imgs/c.jpg", "date_taken"] == "2013-05-06"
    assert (t.loc["imgs/c.jpg", "width"], t.loc["imgs/c.jpg", "height"]) == (40, 80)  # EXIF applied
    assert t.loc["imgs/c.jpg", "source_width"] == 80
    with Image.open(tmp_path / "out" / t.loc["imgs/c.jpg", "annotator_path"]) as im:
        assert im.size == (250, 500)
    with Image.open(tmp_path / "out" / t.loc["flickr:1", "path"]) as im:
        assert im.mode == "RGB" and im.size == (256, 256)
    with Image.open(tmp_path / "out" / t.loc["flickr:2", "path"]) as im:
        assert im.mode == "RGB" and im.getpixel((5, 5)) == (200, 0, 0)  # alpha dropped


@pytest.mark.parametrize("content, match", [
    ("file,label\na.png,3\n", "needs columns path,class"),
    ("path,class,source_id\na.png,three,s\nb.png,three,s\n", "repeated source id"),
    ("path,class,width\na.png,three,wide\n", "whole number"),
])
def test_csv_errors(tmp_path, content, match):
    (tmp_path / "c.csv").write_text(content)
    with pytest.raises(InputError, match=match):
        import_candidates(tmp_path / "c.csv", vocabulary=VOC, out_dir=tmp_path / "out", name="c", progress=False)
    assert not (tmp_path / "out").exists()


def test_missing_source(tmp_path):
    with pytest.raises(InputError, match="no such folder"):
        import_candidates(tmp_path / "nope", vocabulary=VOC, out_dir=tmp_path / "out", name="c", progress=False)


def test_world_pool_folder(tmp_path):
    from shiftlab.world import build_world

    world = build_world(tmp_path / "ws", progress=False)
    pool = world.manifest("pool")
    src = tmp_path / "src"
    picked = pool.table.groupby("label").head(2)
    for r, p in zip(picked.itertuples(), pool.subset(picked.index.to_numpy()).abspaths()):
        (src / VOC[r.label].name).mkdir(parents=True, exist_ok=True)
        shutil.copy(p, src / VOC[r.label].name / p.name)
    (src / "zero" / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    m, bl = import_candidates(src, vocabulary=VOC, out_dir=tmp_path / "out", name="pool-import", progress=False)
    assert len(m) == len(picked) == 20
    assert list(bl) == [candidate_id("zero/corrupt.png")]
    assert sorted(m.labels.tolist()) == sorted(picked.label.tolist())
    for p in m.abspaths():
        with Image.open(p) as im:
            assert im.size == (256, 256)
