"""A small class hierarchy over the ten digits (for fine-grained mistakes), in the BREEDS file format,
and each digit's most similar other digits (for negative HIT controls)."""

from __future__ import annotations

from shiftlab.data.classes import DIGIT_NAMES

#: superclasses by shape: closed loops, straight strokes, open curves
GROUPS = {"loops": (0, 6, 8, 9), "strokes": (1, 4, 7), "curves": (2, 3, 5)}

#: visually closest digits first (entry [0] gives the negative controls of a HIT)
SIMILAR = {0: (6, 8, 9), 1: (7, 4), 2: (3, 5), 3: (5, 8, 2), 4: (9, 1, 7), 5: (3, 6, 8), 6: (0, 5, 8),
           7: (1, 9, 4), 8: (3, 0, 9), 9: (4, 8, 7)}


def class_id(k: int) -> str:
    """The hierarchy node of digit ``k``: ``"d<k>"``."""
    return f"d{k}"


def edges() -> list[tuple[str, str]]:
    """The hierarchy's ``(parent, child)`` edges: root ``digit`` → the shape groups ``g_<group>`` → the digits."""
    out = [("digit", f"g_{g}") for g in GROUPS]
    for g, members in GROUPS.items():
        out += [(f"g_{g}", class_id(k)) for k in members]
    return out


def node_names() -> dict[str, str]:
    """Node → readable name: ``digit``, ``<group> digits`` for the groups and the digit names (``zero`` …)."""
    names = {"digit": "digit"}
    names.update({f"g_{g}": f"{g} digits" for g in GROUPS})
    names.update({class_id(k): DIGIT_NAMES[k] for k in range(10)})
    return names


def superclass(k: int) -> str:
    """The shape group of digit ``k`` (a key of ``GROUPS``: ``loops``, ``strokes`` or ``curves``)."""
    return next(g for g, members in GROUPS.items() if k in members)


def most_similar(k: int) -> list[int]:
    """k itself, then its similar digits, then the rest in index order (ImageNetV2's most_similar_wnids)."""
    rest = [j for j in range(10) if j != k and j not in SIMILAR[k]]
    return [k, *SIMILAR[k], *rest]
