"""Review decisions (``query,reference,is_duplicate,reviewer`` CSVs) and the S1.4 resolution of duplicates."""

from __future__ import annotations

import csv
import os
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from shiftlab.errors import InputError

_TRUE = {"1", "true", "yes", "y", "t", "duplicate"}
_FALSE = {"0", "false", "no", "n", "f", "distinct"}
REVIEW_COLUMNS = ["query", "reference", "is_duplicate", "reviewer"]


def read_review_csv(path: str | os.PathLike) -> pd.DataFrame:
    """Review decisions: CSV with header ``query,reference,is_duplicate,reviewer`` (is_duplicate one of
    true/false, 1/0, yes/no). Returns those columns with is_duplicate as bool; InputError on anything else."""
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: cannot read review decisions ({e})") from None
    if not rows:
        raise InputError(f"{path}: empty; expected a header {','.join(REVIEW_COLUMNS)}")
    header = [h.strip() for h in rows[0]]
    if sorted(header) != sorted(REVIEW_COLUMNS) or len(header) != len(REVIEW_COLUMNS):
        extra = sorted(set(header) - set(REVIEW_COLUMNS))
        missing = sorted(set(REVIEW_COLUMNS) - set(header))
        raise InputError(f"{path}: review CSV needs columns {','.join(REVIEW_COLUMNS)}"
                         + (f"; unknown: {','.join(extra)}" if extra else "")
                         + (f"; missing: {','.join(missing)}" if missing else ""))
    out = []
    for n, row in enumerate(rows[1:], start=2):
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) != len(header):
            raise InputError(f"{path}:{n}: {len(row)} fields, expected {len(header)}")
        rec = dict(zip(header, (c.strip() for c in row)))
        v = rec["is_duplicate"].lower()
        if v not in _TRUE | _FALSE:
            raise InputError(f"{path}:{n}: is_duplicate {rec['is_duplicate']!r} is not true/false")
        if not rec["query"] or not rec["reference"]:
            raise InputError(f"{path}:{n}: empty query or reference id")
        rec["is_duplicate"] = v in _TRUE
        out.append(rec)
    return pd.DataFrame(out, columns=REVIEW_COLUMNS).astype({"is_duplicate": bool})


def duplicate_links(reviews: pd.DataFrame) -> list[tuple[str, str]]:
    """The (query, reference) pairs judged duplicates (the later decision on a pair wins)."""
    last = {}
    for a, b, d in zip(reviews["query"], reviews["reference"], reviews["is_duplicate"]):
        last[frozenset((str(a), str(b)))] = (str(a), str(b), bool(d))
    return [(a, b) for a, b, d in last.values() if d]


# --- resolution --------------------------------------------------------------------------------------
GOOD, FALLBACK = 0.7, 0.6


def resolve_duplicates(candidates: pd.DataFrame, duplicate_links: Iterable[tuple[str, str]],
                       original_ids: Iterable[str] = (), overrides: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Which candidates survive near-duplicate resolution (S1.4).

    candidates: id, class, frequency (selection frequency; NaN counts as 0), source_id (may be null).
    Graph: duplicate links (may name original-dataset images) + links between candidates sharing a source
    id. A component is named by its smallest candidate id. One with an original image drops all its
    candidates; otherwise one candidate is kept: ``overrides[component] (or [any member id]) → keep id``;
    else among classes whose best in-component frequency ≥ 0.7 (else ≥ 0.6) the class with the fewest ≥ 0.7
    candidates in the whole pool (ties: the smaller class), else the one class with the highest frequency
    (ties: the larger class), as ImageNetV2's ``reload_near_duplicate_data``; then that class's
    highest-frequency candidate (ties by the larger id). Classes compare as numbers when they are indices.
    Returns id, keep, component, reason in the candidates' order.
    """
    need = {"id", "class", "frequency"}
    if need - set(candidates.columns):
        raise InputError(f"candidates lack column(s) {', '.join(sorted(need - set(candidates.columns)))}")
    ids = candidates["id"].astype(str).tolist()
    if len(set(ids)) != len(ids):
        raise InputError("candidates have duplicate ids")
    cls = dict(zip(ids, candidates["class"].astype(str)))
    freq = dict(zip(ids, pd.to_numeric(candidates["frequency"], errors="coerce").fillna(0.0).astype(float)))
    originals = {str(o) for o in original_ids}
    # good (≥ GOOD) candidates per class over the whole pool, and the classes' order: numeric class indices
    # compare as numbers (ImageNet's indices follow the sorted wnids), names as text
    class_good = Counter(cls[i] for i in ids if freq[i] >= GOOD)
    numeric = all(c.lstrip("-").isdigit() for c in cls.values())
    order = {c: (int(c) if numeric else c) for c in set(cls.values())}
    parent: dict[str, str] = {}

    def find(x):
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def union(a, b):
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)

    for i in ids:
        find(i)
    for a, b in duplicate_links:
        union(str(a), str(b))
    if "source_id" in candidates.columns:
        first_of: dict[str, str] = {}
        for i, s in zip(ids, candidates["source_id"]):
            if s is None or (isinstance(s, float) and np.isnan(s)):
                continue
            if s in first_of:
                union(first_of[s], i)
            else:
                first_of[s] = i
    members: dict[str, list[str]] = {}
    for x in list(parent):
        members.setdefault(find(x), []).append(x)
    cand_set = set(ids)
    comp_name = {r: min(x for x in m if x in cand_set) for r, m in members.items() if any(x in cand_set for x in m)}
    over = {}
    for key, keep_id in (overrides or {}).items():
        key, keep_id = str(key), str(keep_id)
        if key not in parent:
            raise InputError(f"override for unknown component {key!r}")
        root = find(key)
        if keep_id not in cand_set or find(keep_id) != root:
            raise InputError(f"override keeps {keep_id!r}, which is not a candidate of component {comp_name[root]!r}")
        over[root] = keep_id

    decision: dict[str, tuple[bool, str]] = {}
    for root, m in members.items():
        cands = sorted(x for x in m if x in cand_set)
        if not cands:
            continue
        origs = sorted(x for x in m if x in originals)
        if origs:
            for x in cands:
                decision[x] = (False, f"duplicate of original {origs[0]}")
            continue
        if len(cands) == 1:
            decision[cands[0]] = (True, "unique")
            continue
        if root in over:
            keep, why = over[root], "override"
        else:
            by_class: dict[str, list[str]] = {}
            for x in cands:
                by_class.setdefault(cls[x], []).append(x)
            best = {c: max(freq[x] for x in xs) for c, xs in by_class.items()}
            eligible = [c for c in by_class if best[c] >= GOOD] or [c for c in by_class if best[c] >= FALLBACK]
            if not eligible:  # ImageNetV2: the one class at the top, the larger one on a tie
                eligible = [max(by_class, key=lambda c: (best[c], order[c]))]
            # the class with the fewest good candidates in the whole pool (not only in this component)
            chosen = min(eligible, key=lambda c: (class_good[c], order[c]))
            keep = max(by_class[chosen], key=lambda x: (freq[x], x))
            why = f"best of class {chosen}"
        for x in cands:
            decision[x] = (True, why) if x == keep else (False, f"duplicate of {keep}")
    return pd.DataFrame({"id": ids, "keep": [decision[i][0] for i in ids],
                         "component": [comp_name[find(i)] for i in ids],
                         "reason": [decision[i][1] for i in ids]})
