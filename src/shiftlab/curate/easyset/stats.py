"""The statistics of a curated set, derived from its intervention records and reconciled (SPECS S5): every class
falls in exactly one category, and the categories, their sub-counts and the image totals must add up; the code
asserts it, so a figure that does not reconcile never reaches a table.

Per class, with ``top`` the target's ranked list and the records folded (``records`` module):
- the set keeps the first ``final_size`` ranked images that are not removed, then the added extras;
- **needing additions**: the class is excluded, or fewer than ``final_size`` ranked images survive, or extras were
  added. Then *excluded*, *filled* (≥ ``final_size`` images) or *still short* (0, 1 or 2 images);
- else **substituted**: a top-``final_size`` image was removed and a lower-ranked one took its place;
- else **crop-only**: an image of the set is cropped; else **clean as ranked**.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pandas as pd

from shiftlab.curate.easyset.records import REASONS, split_reasons

CATEGORIES = ("clean", "crop-only", "substituted", "filled", "excluded", "short")
#: the statistics table's rows: (key, what it counts)
FIGURES = (
    ("classes", "classes"),
    ("clean", "classes clean as ranked"),
    ("crop_only", "classes crop-only"),
    ("substituted", "classes with top-5 substitutions"),
    ("substituted_removed", "  top-3 images removed in them"),
    ("substituted_cropped", "  of them with a cropped substitute"),
    ("additions", "classes needing additions"),
    ("filled", "  filled"),
    ("excluded", "  excluded"),
    ("short", "  still short"),
    ("short_0", "    with 0 images"),
    ("short_1", "    with 1 image"),
    ("short_2", "    with 2 images"),
    ("additions_removed", "  ranked images removed in them"),
    ("additions_added", "  images added in them"),
    ("removed", "images removed"),
    ("added", "images added"),
    ("cropped", "images cropped in the set"),
    ("images", "images in the set"),
    ("set_classes", "classes in the set"),
    ("full_classes", "classes with the full number of images"),
)


@dataclass
class EasysetStats:
    """``table``: ``figure, count`` in ``FIGURES`` order; ``classes``: one row per class (category, counts, the set's
    images); ``reasons``: classes per removal reason and per intervention reason (removals and crops)."""

    table: pd.DataFrame
    classes: pd.DataFrame
    reasons: pd.DataFrame

    def figure(self, key: str) -> int:
        return int(self.table.set_index("key").loc[key, "count"])


def fold_images(records: pd.DataFrame) -> dict[tuple[int, str], dict]:
    """(class, image) → {action (keep/crop/remove or None), added, cropped, crop, reasons}: the last keep/crop/remove
    record is in force; ``cropped`` holds for an image whose record in force (or whose add) crops it."""
    state: dict[tuple[int, str], dict] = {}
    for r in records[records["image"].notna()].itertuples(index=False):
        s = state.setdefault((int(r[0]), r.image), {"action": None, "added": False, "cropped": False, "crop": None,
                                                     "reason": None})
        if r.action == "add":
            s["added"] = True
            s["cropped"] = s["cropped"] or bool(r.cropped)
        else:
            s["action"] = r.action
            s["cropped"] = bool(r.cropped) or (s["added"] and s["cropped"] and r.action != "remove")
        if r.crop is not None:
            s["crop"] = r.crop
        if r.reason:
            s["reason"] = r.reason
    return state


def class_rows(records: pd.DataFrame, ranked: Mapping[int, Sequence[str]], classes: Sequence[int],
               final_size: int = 3) -> pd.DataFrame:
    """One row per class of ``classes``: its category (module docstring) and counts, and ``images``, the set's
    images in order (ranked survivors, then extras)."""
    state = fold_images(records)
    excluded = set(records.loc[records["action"] == "exclude", "class"].astype(int))
    rows = []
    for k in classes:
        top = list(ranked.get(k, []))
        st = {img: s for (c, img), s in state.items() if c == k}
        removed = [f for f in top if st.get(f, {}).get("action") == "remove"]
        kept = [f for f in top if f not in removed][:final_size]
        added = [f for f, s in st.items() if s["added"] and s["action"] != "remove" and f not in kept]
        final = [] if k in excluded else kept + added
        top_removed = [f for f in top[:final_size] if f in removed]
        cropped = [f for f in final if st.get(f, {}).get("cropped")]
        if k in excluded or len(kept) < final_size or added:
            cat = "excluded" if k in excluded else "filled" if len(final) >= final_size else "short"
        elif top_removed:
            cat = "substituted"
        else:
            cat = "crop-only" if cropped else "clean"
        rows.append({"class": k, "category": cat, "n_ranked": len(top), "n_removed": len(removed),
                     "n_top_removed": len(top_removed), "n_added": len(added), "n_cropped": len(cropped),
                     "cropped_substitute": any(f in cropped for f in kept if top.index(f) >= final_size),
                     "n_final": len(final), "images": final})
    return pd.DataFrame(rows)


def reason_counts(records: pd.DataFrame) -> pd.DataFrame:
    """``reason, removal_classes, intervention_classes``: per reason, the classes with a removal naming it, and with
    a removal or crop naming it (the published count took crops in too)."""
    def classes_per(rows):
        per = {r: set() for r in REASONS}
        for k, reason in zip(rows["class"], rows["reason"]):
            for r in split_reasons(reason):
                per[r].add(int(k))
        return per
    rem = classes_per(records[records["action"] == "remove"])
    inter = classes_per(records[records["action"].isin(["remove", "crop"])])
    return pd.DataFrame({"reason": list(REASONS), "removal_classes": [len(rem[r]) for r in REASONS],
                         "intervention_classes": [len(inter[r]) for r in REASONS]})


def easyset_statistics(records: pd.DataFrame, ranked: Mapping[int, Sequence[str]], classes: Sequence[int],
                       final_size: int = 3, top: int = 5) -> EasysetStats:
    """The reconciled statistics (module docstring) of ``records`` over ``classes``; ``ranked``: the target's ranked
    files per class; ``top``: their length, for the labels. Raises ``AssertionError`` if the partitions do not add up
    (a bug, never bad input)."""
    c = class_rows(records, ranked, classes, final_size)
    cat = c["category"] if len(c) else pd.Series([], dtype=object)
    n = {k: int((cat == k).sum()) for k in CATEGORIES}
    sub, add = c[cat == "substituted"], c[cat.isin(["filled", "excluded", "short"])]
    short = c[cat == "short"]
    f = {"classes": len(c), "clean": n["clean"], "crop_only": n["crop-only"], "substituted": n["substituted"],
         "substituted_removed": int(sub["n_top_removed"].sum()),
         "substituted_cropped": int(sub["cropped_substitute"].sum()),
         "additions": len(add), "filled": n["filled"], "excluded": n["excluded"], "short": n["short"],
         **{f"short_{i}": int((short["n_final"] == i).sum()) for i in range(final_size)},
         "additions_removed": int(add["n_removed"].sum()), "additions_added": int(add["n_added"].sum()),
         "removed": int(c["n_removed"].sum()) if len(c) else 0, "added": int(c["n_added"].sum()) if len(c) else 0,
         "cropped": int(c["n_cropped"].sum()) if len(c) else 0, "images": int(c["n_final"].sum()) if len(c) else 0,
         "set_classes": int((c["n_final"] > 0).sum()) if len(c) else 0,
         "full_classes": int((c["n_final"] >= final_size).sum()) if len(c) else 0}
    # the reconciliation: each class in exactly one category, each sub-count within its category
    assert f["clean"] + f["crop_only"] + f["substituted"] + f["additions"] == f["classes"], f
    assert f["filled"] + f["excluded"] + f["short"] == f["additions"], f
    assert sum(f[f"short_{i}"] for i in range(final_size)) == f["short"], f
    assert f["images"] == sum(len(v) for v in c["images"]) if len(c) else True, f
    # the labels name S5's sizes; other sizes (the world's demo) get their own numbers
    table = pd.DataFrame([(k, label.replace("top-5", f"top-{top}").replace("top-3", f"top-{final_size}"), f.get(k, 0))
                          for k, label in FIGURES if k in f], columns=["key", "figure", "count"])
    return EasysetStats(table, c, reason_counts(records))
