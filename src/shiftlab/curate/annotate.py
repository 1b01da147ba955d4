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
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pandas as pd

HIT_SIZE = 48
N_POSITIVE = 3
N_NEGATIVE = 3
ROLES = ("candidate", "positive", "negative")


@dataclass(frozen=True)
class HitImage:
    url: str  # opaque
    image_id: str
    role: str  # candidate | positive | negative


@dataclass(frozen=True)
class Hit:
    hit_id: str
    class_index: int
    images: tuple[HitImage, ...]

    def to_json(self) -> dict:
        return {"hit_id": self.hit_id, "class_index": self.class_index,
                "images": [{"url": i.url, "image_id": i.image_id, "role": i.role} for i in self.images]}

    @classmethod
    def from_json(cls, d: dict) -> Hit:
        return cls(d["hit_id"], int(d["class_index"]),
                   tuple(HitImage(i["url"], i["image_id"], i["role"]) for i in d["images"]))


def opaque_url(image_id: str, seed: int, base: str = "img/") -> str:
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
        chunks = [cands[i:i + per_hit] for i in range(0, len(cands), per_hit)]
        if len(chunks[-1]) < per_hit and len(cands) > len(chunks[-1]):
            # pad the short last chunk with earlier candidates of the class
            earlier = cands[:len(cands) - len(chunks[-1])]
            chunks[-1] = chunks[-1] + rng.sample(earlier, min(per_hit - len(chunks[-1]), len(earlier)))
        for j, chunk in enumerate(chunks):
            pos = rng.sample(sorted(positives.get(k, ())), min(n_positive, len(positives.get(k, ()))))
            neg = rng.sample(sorted(negatives.get(k, ())), min(n_negative, len(negatives.get(k, ()))))
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
