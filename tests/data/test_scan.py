"""Issue 18.2: image folders can't hang or inflate a scan — each real folder is read once (by device and inode),
only regular files are read, and what was skipped is said."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from helpers import write_image
from shiftlab.data.layouts import LINKED_AGAIN, NOT_REGULAR, read_dataset, read_revision_json, sha256_file


def _set(tmp_path):
    root = tmp_path / "set"
    for c, names in (("n01440764", ["a.png", "b.png"]), ("n01443537", ["c.png"])):
        for n in names:
            write_image(root / c / n, size=(8, 8), seed=ord(n[0]), fmt="PNG")
    return root


def _read(root, layout=None):
    return read_dataset(root, layout=layout, progress=False)


def test_links_to_a_folder_itself_neither_loop_nor_count_twice(tmp_path):
    root = _set(tmp_path)
    cat = root / "n01440764"
    os.symlink(".", cat / "l1")
    os.symlink(".", cat / "l2")
    m = _read(root)
    assert sorted(m.table["path"]) == ["n01440764/a.png", "n01440764/b.png", "n01443537/c.png"]
    assert m.parameters["skipped"] == {LINKED_AGAIN: 2}


@pytest.mark.parametrize("target", ["..", "../..", "../n01443537", "sub", "../n01440764/sub"])
def test_every_kind_of_folder_link_adds_each_file_once(tmp_path, target):
    """A link to the parent, the dataset's own parent, the other class, a subfolder of the same class."""
    root = _set(tmp_path)
    write_image(root / "n01440764" / "sub" / "d.png", size=(8, 8), seed=9, fmt="PNG")
    os.symlink(target, root / "n01440764" / "link")
    m = _read(root)
    paths = sorted(m.table["path"])
    assert len(paths) == len(set(m.table["sha256"])) == 4  # every file once, none under a second name
    assert dict(zip(m.table["path"], m.labels))["n01443537/c.png"] == 1  # c keeps its own class
    assert m.parameters["skipped"][LINKED_AGAIN] >= 1


def test_a_class_folder_that_is_another_class_folder_is_skipped(tmp_path):
    root = _set(tmp_path)
    os.symlink("n01440764", root / "n01443538")
    m = _read(root, "imagefolder")
    assert len(m) == 3 and m.parameters["skipped"] == {LINKED_AGAIN: 1}


def test_a_deep_chain_of_links_terminates(tmp_path):
    root = _set(tmp_path)
    d = root / "n01440764"
    for i in range(30):  # 30 links to the root: os.walk(followlinks=True) counted every file 31 times and more
        os.symlink("../" * 1 + "n01440764", d / f"l{i}")
    m = _read(root)
    assert len(m) == 3 and m.parameters["skipped"] == {LINKED_AGAIN: 30}


def test_fifos_devices_and_broken_links_named_like_images_are_skipped(tmp_path):
    root = _set(tmp_path)
    cat = root / "n01440764"
    os.mkfifo(cat / "p.png")
    os.symlink("/dev/zero", cat / "z.png")
    os.symlink("/nonexistent/x.png", cat / "broken.png")
    # a fresh interpreter with a time limit: before, hashing the FIFO blocked for ever
    code = (f"from shiftlab.data.layouts import read_dataset; m = read_dataset({str(root)!r}, progress=False); "
            "print(len(m), m.parameters['skipped'])")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr[-1000:]
    assert r.stdout.split(None, 1)[0] == "3" and f"'{NOT_REGULAR}': 3" in r.stdout
    assert "skipped 3 image name(s) that are not regular files" in " ".join(r.stderr.split())  # said on stderr


def test_hashing_and_decoding_refuse_what_is_not_a_regular_file(tmp_path):
    from shiftlab.data.decode import decode_image

    fifo = tmp_path / "p.png"
    os.mkfifo(fifo)
    for p in (fifo, "/dev/zero"):
        with pytest.raises(OSError, match="not a regular file"):
            sha256_file(p)
        assert decode_image(p).reason == "not a regular file"


def test_a_csv_or_revision_that_lists_a_fifo_does_not_hang(tmp_path):
    root = _set(tmp_path)
    os.mkfifo(root / "n01440764" / "p.png")
    (root / "list.csv").write_text("path,label\nn01440764/a.png,0\nn01440764/p.png,0\n")
    code = (f"from shiftlab.data.layouts import read_dataset; m = read_dataset({str(root / 'list.csv')!r}, "
            "progress=False); print(m.table['sha256'].isna().tolist())")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == "[False, True]", r.stderr[-1000:]


def test_a_revision_root_with_link_loops_is_indexed_once(tmp_path):
    import json

    root = _set(tmp_path)
    os.symlink("..", root / "n01440764" / "up")
    rev = tmp_path / "x-a-1.json"
    rev.write_text(json.dumps({"image_filenames": [["a", "n01440764"], ["c", "n01443537"]]}))
    m = read_revision_json(rev, root=root, progress=False)
    assert list(m.table["path"]) == ["n01440764/a.png", "n01443537/c.png"]
