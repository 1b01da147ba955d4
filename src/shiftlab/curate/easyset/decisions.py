"""Reviewer decisions (the ReviewLog's decisions in force, as ``read_decisions`` gives them) → intervention records.

The review queue (``queue_items``) holds, per class, the target's ranked images and its extras; a decision on an
image is ``keep``, ``crop`` (with a box) or ``remove`` (with a reason); ``exclude class`` on the target
``class:<k>`` or on any image of class k excludes the class (the review app logs it on the image in view).
Extras become ``add`` records only as far as the class needs them, chosen the S5 way: an uncropped extra before
a higher-confidence one that needs a crop, each group by confidence.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

from shiftlab.curate.easyset.records import make_records, stage_of

KEEP, CROP, REMOVE, EXCLUDE = "keep", "crop", "remove", "exclude class"
DECISIONS = (KEEP, CROP, REMOVE)
#: the target of a whole-class decision
CLASS_TARGET = "class:{}"
QUEUE_COLUMNS = ("id", "class", "rank", "stage", "confidence")


def queue_items(ranked: Mapping[int, Sequence[tuple[str, float]]], extras: Mapping[int, Sequence[tuple[str, float]]],
                final_size: int = 3, top: int = 5) -> pd.DataFrame:
    """``QUEUE_COLUMNS``: per class (ascending), its ranked images (rank 1…) then its extras (rank 0, stage
    ``extra``), the order a reviewer sees them in."""
    rows = []
    for k in sorted(set(ranked) | set(extras)):
        rows += [(f, k, r, stage_of(r, final_size, top), c) for r, (f, c) in enumerate(ranked.get(k, []), 1)]
        rows += [(f, k, 0, "extra", c) for f, c in extras.get(k, [])]
    return pd.DataFrame(rows, columns=list(QUEUE_COLUMNS))


def choose_extras(usable: pd.DataFrame, n: int) -> list[str]:
    """``n`` of the usable extras (``id, confidence, cropped``): uncropped ones first, each group by confidence."""
    if n <= 0 or not len(usable):
        return []
    order = usable.assign(c=-usable["confidence"]).sort_values(["cropped", "c", "id"], kind="mergesort")
    return list(order["id"].head(n))


def decision_records(decisions: pd.DataFrame, queue: pd.DataFrame, final_size: int = 3) -> pd.DataFrame:
    """The records of ``decisions`` (``target, decision, reason, crop, note``) over ``queue`` (``queue_items``)."""
    d = decisions.set_index("target") if len(decisions) else pd.DataFrame(columns=["decision"])
    rows = []
    klass = dict(zip(queue["id"], queue["class"]))
    for target, e in d.iterrows():
        if e["decision"] == EXCLUDE:  # on ``class:<k>`` or on any image of the class (what the review app logs)
            k = klass.get(target, None)
            k = int(str(target).split(":", 1)[1]) if k is None else int(k)
            rows.append({"class": k, "image": None, "action": "exclude", "reason": e["reason"] or "other",
                         "note": e.get("note")})
    d = d[d["decision"] != EXCLUDE] if len(d) else d
    for k, items in queue.groupby("class", sort=True):
        ranked = items[items["stage"] != "extra"].sort_values("rank")
        kept = 0
        for f in ranked["id"]:
            if f not in d.index:
                kept += kept < final_size  # undecided: stays as ranked
                continue
            e = d.loc[f]
            rows.append({"class": int(k), "image": f, "action": e["decision"], "reason": e["reason"],
                         "crop": e["crop"], "note": e.get("note")})
            kept += e["decision"] != REMOVE and kept < final_size
        ex = items[(items["stage"] == "extra") & items["id"].isin(d.index)]
        dec = d.loc[list(ex["id"]), "decision"] if len(ex) else pd.Series(dtype=object)
        # a removed extra is kept on record (its reason counts for the class); a kept one only if it is chosen
        rows += [{"class": int(k), "image": x, "action": REMOVE, "reason": d.loc[x, "reason"],
                  "note": d.loc[x].get("note")} for x in ex["id"] if dec[x] == REMOVE]
        usable = ex[ex["id"].map(dec).isin([KEEP, CROP])]
        usable = usable.assign(cropped=usable["id"].map(dec) == CROP)
        for f in choose_extras(usable, final_size - kept):
            e = d.loc[f]
            rows.append({"class": int(k), "image": f, "action": "add", "cropped": e["decision"] == CROP,
                         "crop": e["crop"], "note": e.get("note")})
    return make_records(rows)

