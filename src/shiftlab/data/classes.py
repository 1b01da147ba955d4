"""Class vocabularies: index ↔ wnid ↔ names ↔ gloss.

The ImageNet-1k vocabulary (standard 0–999 indices, i.e. sorted wnid order) ships with the package, so a
folder with two wnid classes still maps onto the indices that a 1000-way model predicts.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources

from shiftlab.errors import InputError, UnknownNameError

_WNID = re.compile(r"n\d{8}", re.ASCII)  # fullmatch: "$" also matches before a final newline


def is_wnid(name: str) -> bool:
    """Whether ``name`` is a WordNet id: ``n`` followed by eight digits (``n01440764``)."""
    return isinstance(name, str) and _WNID.fullmatch(name) is not None


def _norm(name: str) -> str:
    return " ".join(name.replace("_", " ").lower().split())


@dataclass(frozen=True)
class ClassInfo:
    """One class of a vocabulary: its index, wnid (None if it has none), names (first = display name) and gloss."""

    index: int
    wnid: str | None
    names: tuple[str, ...]
    gloss: str = ""

    @property
    def name(self) -> str:
        """The display name: the first of ``names``, else the wnid, else the index as a string."""
        return self.names[0] if self.names else (self.wnid or str(self.index))


@dataclass(frozen=True)
class Vocabulary:
    """An ordered list of classes; position = class index.

    ``name`` identifies a bundled vocabulary (``imagenet-1k``); custom vocabularies are stored inline in
    manifest metadata.
    """

    name: str
    classes: tuple[ClassInfo, ...]
    _by_key: dict = field(default_factory=dict, compare=False, repr=False, hash=False)

    def __post_init__(self):
        index: dict[str, int] = {}
        ambiguous: set[str] = set()
        for c in self.classes:
            if c.wnid:
                index[c.wnid] = c.index
            for n in c.names:
                k = _norm(n)
                if index.get(k, c.index) != c.index:
                    ambiguous.add(k)  # ImageNet has two "crane"s and two "maillot"s
                index.setdefault(k, c.index)
        for k in ambiguous:
            index[k] = -1
        self._by_key.update(index)

    def __len__(self) -> int:
        return len(self.classes)

    def __getitem__(self, i: int) -> ClassInfo:
        return self.classes[i]

    @property
    def wnids(self) -> list[str | None]:
        """The wnid of each class in index order (None for a class without one)."""
        return [c.wnid for c in self.classes]

    @property
    def names(self) -> list[str]:
        """The display name of each class in index order (``ClassInfo.name``)."""
        return [c.name for c in self.classes]

    def index_of(self, key: str) -> int:
        """Class index for a wnid, any of a class's names (case and ``_`` insensitive), or a digit string."""
        i = self._by_key.get(key, self._by_key.get(_norm(key)))
        if i == -1:
            raise UnknownNameError(
                f"class name {key!r} is ambiguous in the {self.name} vocabulary; use the wnid instead")
        if i is not None:
            return i
        raise UnknownNameError(
            f"class {key!r} is not in the {self.name} vocabulary ({len(self)} classes); "
            "name folders by wnid or by a class name of that vocabulary, or pass --vocabulary"
        )

    def knows(self, key: str) -> bool:
        """Whether ``key`` names a class here, ambiguous names included (``index_of`` then says so)."""
        return key in self._by_key or _norm(key) in self._by_key

    def try_index_of(self, key: str) -> int | None:
        """``index_of(key)``, or None when ``key`` names no class or an ambiguous one."""
        try:
            return self.index_of(key)
        except UnknownNameError:
            return None

    def to_json(self) -> dict:
        """The vocabulary as a JSON-ready dict: only ``name`` for a bundled one, else ``name`` and every class."""
        if self.name in BUNDLED:
            return {"name": self.name}
        return {
            "name": self.name,
            "classes": [
                {"index": c.index, "wnid": c.wnid, "names": list(c.names), "gloss": c.gloss}
                for c in self.classes
            ],
        }

    @classmethod
    def from_json(cls, d: dict) -> Vocabulary:
        """The vocabulary of a ``to_json`` dict (a bundled one is loaded by name)."""
        if "classes" not in d:
            return load_vocabulary(d["name"])
        return cls(
            d["name"],
            tuple(ClassInfo(c["index"], c.get("wnid"), tuple(c.get("names", ())), c.get("gloss", ""))
                  for c in d["classes"]),
        )

    @classmethod
    def from_names(cls, names: Sequence[str], name: str = "custom") -> Vocabulary:
        """A vocabulary whose class i is ``names[i]`` (wnids recognised as such)."""
        if len(set(names)) != len(names):
            raise InputError(f"vocabulary {name!r} has repeated class names")
        return cls(name, tuple(
            ClassInfo(i, n if is_wnid(n) else None, (n,)) for i, n in enumerate(names)))


@cache
def imagenet_1k() -> Vocabulary:
    """The bundled ImageNet-1k vocabulary: 1000 classes, standard indices (sorted wnid order); cached."""
    raw = json.loads(resources.files("shiftlab.data").joinpath("vocab/imagenet-1k.json").read_text())
    return Vocabulary("imagenet-1k", tuple(
        ClassInfo(int(c["cid"]), c["wnid"], tuple(c["synset"]), c.get("gloss", "")) for c in raw))


DIGIT_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


@cache
def digits() -> Vocabulary:
    """The ten classes of the embedded digits world; "3" and "three" both name class 3."""
    return Vocabulary("digits", tuple(
        ClassInfo(i, None, (n, str(i)), f"a handwritten digit {i}") for i, n in enumerate(DIGIT_NAMES)))


BUNDLED = {"imagenet-1k": imagenet_1k, "digits": digits}


def load_vocabulary(name: str) -> Vocabulary:
    """A bundled vocabulary by name, or a JSON file listing class names (or wnids) in index order."""
    if name in BUNDLED:
        return BUNDLED[name]()
    from pathlib import Path

    path = Path(name).expanduser()
    if path.suffix.lower() == ".json" and path.is_file():
        from shiftlab.fsutil import read_json

        names = read_json(path)
        if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
            raise InputError(f"{path}: a vocabulary file is a JSON list of class names in index order")
        return Vocabulary.from_names(names, name=path.stem)
    raise UnknownNameError(
        f"unknown vocabulary {name!r}; bundled: {', '.join(BUNDLED)} (or give a JSON file of class names)")


def guess_vocabulary(keys: Iterable[str]) -> Vocabulary | None:
    """ImageNet-1k when every key is one of its wnids or class names, else None.

    Ambiguous names ("crane") count as ImageNet's, so that reading them fails with advice to use the
    wnid instead of silently making a custom vocabulary.
    """
    inet = imagenet_1k()
    keys = list(keys)
    if keys and all(inet.knows(k) for k in keys):
        return inet
    return None
