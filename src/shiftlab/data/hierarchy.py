"""Class hierarchies in the BREEDS format (Santurkar et al. 2021), for superclasses and fine-grained mistakes.

A BREEDS folder holds ``class_hierarchy.txt`` (one ``parent child`` edge per line), ``node_names.txt``
(``node<TAB>name``) and ``dataset_class_info.json`` (``[[class index, node id, names], …]``). The modified
ImageNet hierarchy of BREEDS ships with the package (``imagenet_hierarchy()``, one JSON file holding the
same three tables); the digits world writes its own under ``<workspace>/world/hierarchy``.

Two classes are *fine-grained* neighbours when their lowest common ancestor is a proper superclass (not the
root) within ``max_hops`` edges above both. On the published ViT-3B mistakes (Vasudevan et al. 2022) the
default of 2 marks 182 of the 241 "Fine-grained error" records and 6 of the 52 "Spurious Correlation"
ones (tests/analyze/test_mistakes.py); the world's digits sit one edge below their shape groups.
"""

from __future__ import annotations

import json
import os
from collections import deque
from dataclasses import dataclass, field
from functools import cache, cached_property
from importlib import resources
from pathlib import Path

from shiftlab.errors import InputError

DEFAULT_MAX_HOPS = 2


@dataclass(frozen=True)
class Hierarchy:
    """A class hierarchy (a tree or a DAG of nodes) with the dataset's classes attached to some nodes.

    ``class_nodes[k]`` is the node of class index k, or None when the hierarchy leaves the class out (the
    BREEDS ImageNet hierarchy places 890 of the 1,000 classes).
    """

    parents: dict[str, tuple[str, ...]]
    names: dict[str, str]
    class_nodes: tuple[str | None, ...]
    source: str = ""
    _up: dict = field(default_factory=dict, compare=False, repr=False)

    def __len__(self) -> int:
        return len(self.class_nodes)

    @cached_property  # asked once per pair by shared_superclass; the hierarchy never changes
    def roots(self) -> set[str]:
        """The nodes without a parent (cached)."""
        nodes = set(self.parents) | {p for ps in self.parents.values() for p in ps}
        return {n for n in nodes if not self.parents.get(n)}

    def name(self, node: str) -> str:
        """The readable name of ``node`` (``names``), or the node id itself when it has none."""
        return self.names.get(node, node)

    def ancestors(self, k: int) -> dict[str, int]:
        """Every ancestor node of class k → its distance in edges (shortest path up); empty if not placed."""
        if not 0 <= k < len(self.class_nodes):
            raise InputError(f"class {k} is outside the hierarchy's {len(self.class_nodes)} classes")
        if k not in self._up:
            node = self.class_nodes[k]
            dist: dict[str, int] = {}
            if node is not None:
                q = deque([(node, 0)])
                while q:
                    n, d = q.popleft()
                    for p in self.parents.get(n, ()):
                        if p not in dist:
                            dist[p] = d + 1
                            q.append((p, d + 1))
            self._up[k] = dist
        return self._up[k]

    def common_ancestor(self, a: int, b: int) -> tuple[str, int, int] | None:
        """The lowest common ancestor of classes a and b (fewest edges to the farther of the two) with its
        distances from a and from b; None when they share none or either is not placed."""
        da, db = self.ancestors(a), self.ancestors(b)
        common = [(max(da[n], db[n]), da[n] + db[n], n) for n in da.keys() & db.keys()]
        if not common:
            return None
        _, _, n = min(common)
        return n, da[n], db[n]

    def shared_superclass(self, a: int, b: int, max_hops: int = DEFAULT_MAX_HOPS) -> str | None:
        """The superclass that makes a and b fine-grained neighbours, or None (see the module docstring)."""
        if a == b:
            return None
        lca = self.common_ancestor(a, b)
        if lca is None:
            return None
        node, ha, hb = lca
        if node in self.roots or max(ha, hb) > max_hops:
            return None
        return node

    def superclass(self, k: int, levels: int = 1) -> str | None:
        """The ancestor ``levels`` edges above class k (the nearest one when several are), or None."""
        up = [n for n, d in self.ancestors(k).items() if d == levels]
        return min(up) if up else None


def _parse_edges(lines, where: str) -> dict[str, tuple[str, ...]]:
    parents: dict[str, list[str]] = {}
    for n, line in enumerate(lines, 1):
        parts = line.split() if isinstance(line, str) else list(line)
        if not parts:
            continue
        if len(parts) != 2:
            raise InputError(f"{where}: line {n} is not 'parent child' ({line!r})")
        p, c = (str(x) for x in parts)
        parents.setdefault(c, [])
        if p not in parents[c]:
            parents[c].append(p)
    return {c: tuple(ps) for c, ps in parents.items()}


def _class_nodes(classes, where: str, n_classes: int | None) -> tuple[str | None, ...]:
    try:
        pairs = [(int(r[0]), str(r[1])) for r in classes]
    except (TypeError, ValueError, IndexError):
        raise InputError(f"{where}: dataset_class_info must list [index, node id, names] per class") from None
    n = max(n_classes or 0, 1 + max((i for i, _ in pairs), default=-1))
    nodes: list[str | None] = [None] * n
    for i, node in pairs:
        if i < 0:
            raise InputError(f"{where}: negative class index {i}")
        if nodes[i] is not None:
            raise InputError(f"{where}: class {i} is listed twice")
        nodes[i] = node
    return tuple(nodes)


def _placed(parents, nodes) -> tuple[str | None, ...]:
    """Classes the hierarchy does not contain are not placed (None), so they never share a superclass."""
    known = set(parents) | {p for ps in parents.values() for p in ps}
    return tuple(n if n in known else None for n in nodes)


def read_hierarchy(path: str | os.PathLike, *, n_classes: int | None = None) -> Hierarchy:
    """Read a BREEDS hierarchy folder (or a JSON file in the packaged form)."""
    path = Path(path).expanduser()
    if path.is_file() and path.suffix.lower() == ".json":
        return _from_json(json.loads(path.read_text()), str(path), n_classes)
    files = [path / f for f in ("class_hierarchy.txt", "node_names.txt", "dataset_class_info.json")]
    absent = [f.name for f in files if not f.is_file()]
    if absent:
        raise InputError(f"{path}: not a BREEDS hierarchy folder (missing {', '.join(absent)})")
    parents = _parse_edges(files[0].read_text().splitlines(), str(files[0]))
    names = {}
    for line in files[1].read_text().splitlines():
        if line.strip():
            k, _, v = line.partition("\t")
            names[k.strip()] = v.strip()
    try:
        classes = json.loads(files[2].read_text())
    except ValueError as e:
        raise InputError(f"{files[2]}: not valid JSON ({e})") from None
    nodes = _class_nodes(classes, str(files[2]), n_classes)
    return Hierarchy(parents, names, _placed(parents, nodes), source=str(path))


def _from_json(doc: dict, where: str, n_classes: int | None) -> Hierarchy:
    try:
        parents = _parse_edges(doc["edges"], where)
        nodes = _class_nodes(doc["classes"], where, n_classes)
        names = dict(doc.get("node_names", {}))
    except (KeyError, TypeError) as e:
        raise InputError(f"{where}: a hierarchy JSON needs edges, classes and node_names ({e})") from None
    return Hierarchy(parents, names, _placed(parents, nodes), source=doc.get("source", where))


@cache
def imagenet_hierarchy() -> Hierarchy:
    """The modified WordNet hierarchy of BREEDS over the 1,000 ImageNet classes (standard indices)."""
    raw = resources.files("shiftlab.data").joinpath("vocab/imagenet-1k-hierarchy.json").read_text()
    return _from_json(json.loads(raw), "imagenet-1k-hierarchy.json", 1000)
