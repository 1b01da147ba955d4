"""Class hierarchies in the BREEDS format: the packaged ImageNet one, the world's, and hand-made ones."""

from __future__ import annotations

import pytest

from helpers import write_breeds
from shiftlab.data.hierarchy import imagenet_hierarchy, read_hierarchy
from shiftlab.errors import InputError


def test_superclasses_of_a_small_hierarchy(tmp_path):
    #            root
    #          /      \
    #      animal     thing
    #      /    \        \
    #    dog    cat      cup(3)
    #   /  \      \
    # d0(0) d1(1) c0(2)          and class 4 placed nowhere
    edges = [("root", "animal"), ("root", "thing"), ("animal", "dog"), ("animal", "cat"), ("dog", "d0"),
             ("dog", "d1"), ("cat", "c0"), ("thing", "cup")]
    h = read_hierarchy(write_breeds(tmp_path / "h", edges, {"dog": "dog, domestic dog", "animal": "animal"},
                               [[0, "d0", "x"], [1, "d1", "y"], [2, "c0", "z"], [3, "cup", "w"], [4, "n4", "v"]]))
    assert len(h) == 5 and h.class_nodes[4] is None and h.roots == {"root"}
    assert h.ancestors(0) == {"dog": 1, "animal": 2, "root": 3}
    assert h.common_ancestor(0, 1) == ("dog", 1, 1)
    assert h.shared_superclass(0, 1) == "dog" and h.name("dog") == "dog, domestic dog"
    assert h.shared_superclass(0, 2) == "animal"  # two levels above both
    assert h.shared_superclass(0, 2, max_hops=1) is None
    assert h.shared_superclass(0, 3) is None  # only the root joins them
    assert h.shared_superclass(0, 4) is None and h.shared_superclass(1, 1) is None
    assert h.superclass(0) == "dog" and h.superclass(0, 2) == "animal"


def test_a_dag_takes_the_nearest_common_ancestor(tmp_path):
    edges = [("r", "a"), ("r", "b"), ("a", "x"), ("b", "x"), ("b", "y")]  # x has two parents
    h = read_hierarchy(write_breeds(tmp_path / "h", edges, {}, [[0, "x", ""], [1, "y", ""]]))
    assert h.ancestors(0) == {"a": 1, "b": 1, "r": 2}
    assert h.shared_superclass(0, 1) == "b"


def test_the_worlds_hierarchy_groups_digits_by_shape(tmp_path):
    from shiftlab.world.build import _write_hierarchy

    _write_hierarchy(tmp_path / "h")
    h = read_hierarchy(tmp_path / "h", n_classes=10)
    assert h.name(h.shared_superclass(0, 6)) == "loops digits"
    assert h.name(h.shared_superclass(1, 7)) == "strokes digits"
    assert h.shared_superclass(0, 1) is None  # loops and strokes meet only at the root


def test_bad_hierarchies_are_one_line_errors(tmp_path):
    with pytest.raises(InputError, match="not a BREEDS hierarchy folder .*class_hierarchy.txt"):
        read_hierarchy(tmp_path)
    f = write_breeds(tmp_path / "h", [("a", "b")], {}, [[0, "b", ""]])
    (f / "class_hierarchy.txt").write_text("a b c\n")
    with pytest.raises(InputError, match="line 1 is not 'parent child'"):
        read_hierarchy(f)
    write_breeds(f, [("a", "b")], {}, [[0, "b", ""], [0, "a", ""]])
    with pytest.raises(InputError, match="class 0 is listed twice"):
        read_hierarchy(f)


def test_packaged_imagenet_hierarchy_is_the_breeds_release(reference):
    h = imagenet_hierarchy()
    ref = read_hierarchy(reference / "imagenet" / "hierarchy", n_classes=1000)
    assert h.parents == ref.parents and h.names == ref.names and h.class_nodes == ref.class_nodes
    assert len(h) == 1000 and sum(n is not None for n in h.class_nodes) == 890
    # wnids in index order, as the vocabulary bundled with the package
    from shiftlab.data.classes import imagenet_1k

    voc = imagenet_1k()
    assert all(n is None or n == voc[i].wnid for i, n in enumerate(h.class_nodes))
    # two dog breeds share "dog"; a dog and a tench do not share anything below the root's level
    dog = h.name(h.shared_superclass(voc.index_of("n02085620"), voc.index_of("n02085782")))
    assert dog.startswith("dog")
    assert h.shared_superclass(voc.index_of("n02085620"), voc.index_of("n01440764")) is None
