"""Crowd annotation in the ImageNetV2 style (SPECS S1.2): HIT batches and their crowd-platform shape.

A HIT shows 48 images for one class: 42 candidates + 3 positive controls (validation images of the class)
+ 3 negative controls (validation images of the most similar other class), shuffled with a recorded seed;
a short last chunk is padded with earlier candidates of the class. Image URLs are opaque, so a worker
cannot tell controls from candidates.

The crowd-platform shape (MTurk batch input / batch results):
- input CSV: one row per HIT — ``hit_id, class_index, class_name, gloss, image_1 … image_48`` (URLs);
- results CSV: one row per assignment — ``HITId, AssignmentId, WorkerId, AssignmentStatus
  (Submitted | Approved | Rejected), AcceptTime, SubmitTime, Input.hit_id, Input.class_index,
  Input.image_1 … Input.image_48, Answer.image_1 … Answer.image_48`` with answers ``true``/``false``
  (ticked: "contains the class").
"""

from __future__ import annotations

import hashlib
import os
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from shiftlab.data.layouts import read_dataset
from shiftlab.errors import InputError
from shiftlab.fsutil import atomic_write_bytes, atomic_write_json, read_json
from shiftlab.registry import load_plugins
from shiftlab.workspace import Workspace

HIT_SIZE = 48
N_POSITIVE = 3
N_NEGATIVE = 3
ROLES = ("candidate", "positive", "negative")


@dataclass(frozen=True)
class HitImage:
    """One image of a HIT: its opaque URL, the id of the image it shows and its role (``ROLES``)."""

    url: str  # opaque
    image_id: str
    role: str  # candidate | positive | negative


@dataclass(frozen=True)
class Hit:
    """One HIT: its id (``make_hits``: ``hit-<class:04d>-<chunk:03d>``), the class asked about and its images."""

    hit_id: str
    class_index: int
    images: tuple[HitImage, ...]

    def to_json(self) -> dict:
        """The fields as a JSON-ready dict (images as a list of ``{url, image_id, role}``)."""
        return {"hit_id": self.hit_id, "class_index": self.class_index,
                "images": [{"url": i.url, "image_id": i.image_id, "role": i.role} for i in self.images]}

    @classmethod
    def from_json(cls, d: dict) -> Hit:
        """The HIT of a ``to_json`` dict; ``InputError`` for a field of the wrong type (a list as a HIT id, a
        class index that is not a non-negative whole number, an image without text url, image_id and role)."""
        if not isinstance(d, dict):
            raise InputError(f"a HIT is an object, not {type(d).__name__}")
        hit_id, k, images = d.get("hit_id"), d.get("class_index"), d.get("images")
        if not isinstance(hit_id, str) or not hit_id:
            raise InputError(f"hit_id must be text, not {type(hit_id).__name__}")
        if isinstance(k, float) and k.is_integer():
            k = int(k)
        if not isinstance(k, int) or isinstance(k, bool) or k < 0:
            raise InputError(f"HIT {hit_id}: class_index {str(k)[:40]!r} is not a class index (a whole number ≥ 0)")
        if not isinstance(images, list) or not all(
                isinstance(i, dict) and all(isinstance(i.get(f), str) for f in ("url", "image_id", "role"))
                for i in images):
            raise InputError(f"HIT {hit_id}: images must be a list of {{url, image_id, role}} (text)")
        return cls(hit_id, k, tuple(HitImage(i["url"], i["image_id"], i["role"]) for i in images))


def opaque_url(image_id: str, seed: int, base: str = "img/") -> str:
    """The opaque URL an image is shown under in a HIT (default ``base`` ``"img/"``).

    ``base`` + the first 20 hex digits of sha1(``"<seed>:<image_id>"``) + ``.png``: the same (image, seed) always
    gives the same URL, and nothing in it tells a control from a candidate.
    """
    return f"{base}{hashlib.sha1(f'{seed}:{image_id}'.encode()).hexdigest()[:20]}.png"


def make_hits(candidates: Mapping[int, Sequence[str]], positives: Mapping[int, Sequence[str]],
              negatives: Mapping[int, Sequence[str]], *, seed: int, hit_size: int = HIT_SIZE,
              n_positive: int = N_POSITIVE, n_negative: int = N_NEGATIVE, url_base: str = "img/") -> list[Hit]:
    """HITs for every class with candidates, in sorted class order, from one seeded RNG.

    candidates[k]: candidate ids collected for class k; positives[k]: validation ids of class k;
    negatives[k]: validation ids of the class most similar to k. Controls are drawn without replacement
    within a HIT (fewer if fewer exist).
    """
    rng = random.Random(seed)
    per_hit = hit_size - n_positive - n_negative
    hits = []
    for k in sorted(candidates):
        cands = sorted(candidates[k])
        if not cands:
            continue
        rng.shuffle(cands)  # mixed chunks: validation images annotated as candidates don't crowd out controls
        chunks = [cands[i:i + per_hit] for i in range(0, len(cands), per_hit)]
        if len(chunks[-1]) < per_hit and len(cands) > len(chunks[-1]):
            # pad the short last chunk with earlier candidates of the class
            earlier = cands[:len(cands) - len(chunks[-1])]
            chunks[-1] = chunks[-1] + rng.sample(earlier, min(per_hit - len(chunks[-1]), len(earlier)))
        for j, chunk in enumerate(chunks):
            # a control is never also a candidate of the same HIT (validation images may be both)
            in_chunk = set(chunk)
            pos_pool = sorted(set(positives.get(k, ())) - in_chunk)
            neg_pool = sorted(set(negatives.get(k, ())) - in_chunk)
            pos = rng.sample(pos_pool, min(n_positive, len(pos_pool)))
            neg = rng.sample(neg_pool, min(n_negative, len(neg_pool)))
            items = [(c, "candidate") for c in chunk] + [(p, "positive") for p in pos] + \
                [(n, "negative") for n in neg]
            rng.shuffle(items)
            hits.append(Hit(f"hit-{k:04d}-{j:03d}", k, tuple(
                HitImage(opaque_url(i, seed, url_base), i, r) for i, r in items)))
    return hits


def input_table(hits: Sequence[Hit], class_names: Sequence[str], glosses: Sequence[str] | None = None) -> pd.DataFrame:
    """The batch-input CSV of a crowd platform: one row per HIT, one column per image URL."""
    width = max((len(h.images) for h in hits), default=0)
    rows = []
    for h in hits:
        row = {"hit_id": h.hit_id, "class_index": h.class_index, "class_name": class_names[h.class_index],
               "gloss": glosses[h.class_index] if glosses else ""}
        for i in range(width):
            row[f"image_{i + 1}"] = h.images[i].url if i < len(h.images) else ""
        rows.append(row)
    return pd.DataFrame(rows)


def write_hit_batch(hits: Sequence[Hit], out_dir, class_names: Sequence[str],
                    glosses: Sequence[str] | None = None, *, seed: int | None = None):
    """Write ``batch.json`` (seed + HITs with URL → image id and role) and ``input.csv`` (the platform's
    batch input, see ``input_table``) into ``out_dir``; returns the two paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "batch.json", {"seed": seed, "hits": [h.to_json() for h in hits]})
    csv = input_table(hits, class_names, glosses).to_csv(index=False, lineterminator="\n")
    atomic_write_bytes(out / "input.csv", csv.encode())
    return out / "batch.json", out / "input.csv"


def read_hit_batch(path) -> list[Hit]:
    """The HITs of a ``batch.json`` (or of the ``batch.json`` in a folder); InputError when malformed."""
    p = Path(path)
    if p.is_dir():
        p = p / "batch.json"
    raw = read_json(p, what="not a HIT batch")  # strict: Infinity as a class index, or deep nesting, is one line
    try:
        items = raw["hits"] if isinstance(raw, dict) else raw
        if not isinstance(items, list):
            raise TypeError("hits must be a list")
        hits = [Hit.from_json(d) for d in items]
    except (KeyError, TypeError, ValueError, InputError) as e:
        raise InputError(f"{p}: malformed HIT batch ({e}); "
                         "expected {seed, hits: [{hit_id, class_index, images: [{url, image_id, role}]}]}") from None
    ids = [h.hit_id for h in hits]
    if len(set(ids)) != len(ids):
        raise InputError(f"{p}: repeated HIT ids in the batch")
    for h in hits:
        bad = [i.role for i in h.images if i.role not in ROLES]
        if bad:
            raise InputError(f"{p}: HIT {h.hit_id} has an image with role {bad[0]!r} (roles: {', '.join(ROLES)})")
    return hits


def read_hit_batch_seed(path) -> int | None:
    """The shuffling seed recorded in a ``batch.json`` (None when not recorded)."""
    p = Path(path)
    if p.is_dir():
        p = p / "batch.json"
    raw = read_json(p)
    return raw.get("seed") if isinstance(raw, dict) else None


def hits_for_pool(pool, validation, similar: Mapping[int, Sequence[int]], *, seed: int,
                  hit_size: int = HIT_SIZE, n_positive: int = N_POSITIVE, n_negative: int = N_NEGATIVE,
                  url_base: str = "img/", annotate_validation: bool = False) -> list[Hit]:
    """HITs for a pool manifest: candidates of class k = pool ids labelled k (and, with
    ``annotate_validation``, the validation ids labelled k, which MatchedFrequency needs annotated);
    positive controls = validation ids labelled k; negative controls = validation ids of ``similar[k][0]``
    (the most similar other class; none when ``similar`` has no entry for k)."""
    cands = {int(k): list(g) for k, g in pool.table.groupby("label")["id"] if k >= 0}
    val = {int(k): list(g) for k, g in validation.table.groupby("label")["id"] if k >= 0}
    if annotate_validation:
        cands = {k: cands.get(k, []) + val.get(k, []) for k in sorted(set(cands) | set(val))}
    neg = {k: val.get(int(similar[k][0]), []) if similar.get(k) else [] for k in cands}
    return make_hits(cands, val, neg, seed=seed, hit_size=hit_size, n_positive=n_positive,
                     n_negative=n_negative, url_base=url_base)


# --- a HIT batch for a pool, as ``shiftlab hits make`` writes it ---------------------------------------------
#: vocabulary name → its classes' most similar other classes, for vocabularies that come with one
#: (``register_similar_classes``; the digits world registers the digits')
_SIMILAR: dict[str, Mapping[int, Sequence[int]]] = {}


def register_similar_classes(vocabulary: str, similar: Mapping[int, Sequence[int]]) -> None:
    """Default negative-control classes for HITs over ``vocabulary`` (class → most similar other classes)."""
    _SIMILAR[vocabulary] = {int(k): [int(x) for x in v] for k, v in similar.items()}


def read_similar_classes(path: str | os.PathLike, vocabulary) -> dict[int, list[int]]:
    """Class → most similar other classes from a JSON file such as ImageNetV2's ``most_similar_wnids.json``
    (keys and values are wnids or class names; the list may start with the class itself, which is dropped)."""
    raw = read_json(path)
    if not isinstance(raw, dict) or not all(isinstance(v, list) for v in raw.values()):
        raise InputError(f"{path}: expected {{class: [most similar classes, …]}}")
    out = {}
    for k, v in raw.items():
        i = vocabulary.index_of(str(k))
        out[i] = [vocabulary.index_of(str(x)) for x in v if vocabulary.index_of(str(x)) != i]
    return out


@dataclass(frozen=True)
class HitBatch:
    """What ``make_hit_batch`` wrote: the HITs, ``batch.json``, the platform's ``input.csv``, the class count."""

    hits: list[Hit]
    batch: Path
    input_csv: Path
    n_classes: int


def make_hit_batch(pool, validation, *, seed: int, similar=None, annotate_validation: bool = False,
                   out_dir: str | os.PathLike | None = None, workspace=None) -> HitBatch:
    """HITs for a pool (``hits_for_pool``) written as ``batch.json`` and ``input.csv`` (``write_hit_batch``).

    pool, validation: registered names, paths or Manifests of one vocabulary. ``similar``: class → most similar
    classes (a mapping, or a JSON file for ``read_similar_classes``); default: the vocabulary's registered one.
    ``out_dir``: default ``<workspace>/hits/<pool name>``.
    """
    p = pool if hasattr(pool, "table") else read_dataset(pool, workspace=workspace)
    v = validation if hasattr(validation, "table") else read_dataset(validation, workspace=workspace)
    if p.vocabulary.name != v.vocabulary.name:
        raise InputError(f"{p.name} uses {p.vocabulary.name} but {v.name} uses {v.vocabulary.name}")
    if similar is None:
        load_plugins()
        if p.vocabulary.name not in _SIMILAR:
            raise InputError(f"give --similar (a JSON of class → most similar classes, e.g. ImageNetV2's "
                             f"most_similar_wnids.json) for the {p.vocabulary.name} vocabulary")
        similar = _SIMILAR[p.vocabulary.name]
    elif not isinstance(similar, Mapping):
        similar = read_similar_classes(similar, p.vocabulary)
    hits = hits_for_pool(p, v, similar, seed=seed, annotate_validation=annotate_validation)
    if out_dir is None:
        ws = workspace if isinstance(workspace, Workspace) else Workspace.resolve(workspace)
        out_dir = ws.root / "hits" / p.name
    batch, csv = write_hit_batch(hits, out_dir, p.vocabulary.names, [c.gloss for c in p.vocabulary.classes],
                                 seed=seed)
    return HitBatch(hits, batch, csv, int(p.table["label"].nunique()))
