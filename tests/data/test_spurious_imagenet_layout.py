"""The Spurious ImageNet folder layout (SPECS S3): folder name fields, pooled classes, ignored files, bad names."""

from __future__ import annotations

import pytest

from helpers import write_image
from shiftlab.data.formats.spurious_imagenet import (
    parse_folder_name,
    read_spurious_folder,
    read_spurious_imagenet,
)
from shiftlab.errors import InputError


def make_layout(root, folders: dict[str, int]):
    images = root / "images"
    for i, (name, n) in enumerate(folders.items()):
        for j in range(n):
            write_image(images / name / f"{j}.png", size=(24, 24), seed=100 * i + j)
    images.mkdir(parents=True, exist_ok=True)
    (images / "timestamp.txt").write_text("1674000000\n")
    return root


def test_folder_name_fields():
    assert parse_folder_name("spurious_imagenet_7_comp_3") == (7, 3)
    assert parse_folder_name("a_b_123_x_y_0") == (123, 0)
    for bad in ("spurious_imagenet_7", "spurious_imagenet_seven_comp_3", "spurious_imagenet_7_comp_x",
                "spurious_imagenet_1000_comp_1", "spurious_imagenet_-1_comp_1"):
        with pytest.raises(InputError) as e:
            parse_folder_name(bad)
        assert bad in str(e.value) and "\n" not in str(e.value)


def test_reads_folders_pools_a_class_and_ignores_files_beside(tmp_path):
    root = make_layout(tmp_path / "spurious_imagenet", {
        "spurious_imagenet_7_comp_3": 3,
        "spurious_imagenet_7_comp_11": 2,  # a second component of class 7: pooled negatives
        "spurious_imagenet_450_comp_0": 4,
    })
    m = read_spurious_imagenet(root, progress=False)
    assert len(m) == 9 and m.vocabulary.name == "imagenet-1k"
    t = m.table
    assert (t["label"] == t["spurious_class"]).all()
    assert t.groupby("spurious_class").size().to_dict() == {7: 5, 450: 4}
    assert sorted(set(zip(t["spurious_class"], t["component"]))) == [(7, 3), (7, 11), (450, 0)]
    assert not t["path"].str.contains("timestamp").any()
    assert t["id"].is_unique and t["sha256"].notna().all()
    assert m.parameters["per_folder"] == {"spurious_imagenet_7_comp_3": 3, "spurious_imagenet_7_comp_11": 2,
                                          "spurious_imagenet_450_comp_0": 4}
    assert len(m.parameters["unexpected_counts"]) == 3  # none holds the README's 75: reported, not required
    assert m.parameters["ignored_files"] == 1  # timestamp.txt
    assert m.parameters["layout"] == "spurious-imagenet"
    # the images/ folder itself reads the same
    assert read_spurious_imagenet(root / "images", progress=False).content_hash == m.content_hash
    # every image can be found from the manifest
    assert all(p.is_file() for p in m.abspaths())


def test_a_folder_that_breaks_the_pattern_is_one_line(tmp_path):
    root = make_layout(tmp_path / "s", {"spurious_imagenet_7_comp_3": 1, "holiday_pictures": 1})
    with pytest.raises(InputError) as e:
        read_spurious_imagenet(root, progress=False)
    msg = str(e.value)
    assert "holiday_pictures" in msg and "\n" not in msg


def test_empty_layout_and_missing_folder(tmp_path):
    (tmp_path / "e" / "images").mkdir(parents=True)
    with pytest.raises(InputError, match="no \\(class, component\\) folders"):
        read_spurious_imagenet(tmp_path / "e", progress=False)
    (tmp_path / "e" / "images" / "spurious_imagenet_1_comp_2").mkdir()
    with pytest.raises(InputError, match="hold no image files"):
        read_spurious_imagenet(tmp_path / "e", progress=False)
    with pytest.raises(InputError, match="no such folder"):
        read_spurious_imagenet(tmp_path / "nope", progress=False)


def test_a_users_folder_of_one_class(tmp_path):
    from shiftlab.data.classes import digits

    for j in range(3):
        write_image(tmp_path / "mine" / "sub" / f"{j}.png", size=(16, 16), seed=j)
    (tmp_path / "mine" / "notes.txt").write_text("x")
    m = read_spurious_folder(tmp_path / "mine", 4, vocabulary=digits(), progress=False)
    assert len(m) == 3 and set(m.table["spurious_class"]) == {4} and set(m.labels) == {4}
    with pytest.raises(InputError, match="outside the 10 classes"):
        read_spurious_folder(tmp_path / "mine", 10, vocabulary=digits(), progress=False)
