"""SCOOTER's free-text curation notes (``notes.txt``) → intervention records, by a rule table that is written out
here and tested, and a list of every statement the rules could not map (never a guess).

The notes are one block per class (``class N: …``). A block is split into statements: sentences (``.``, ``!``,
``?``), ``X-Tra:`` lines, a run-on sentence at an id that follows a word once an action was said, and a clause
``… and <ids> due to …`` inside a removal sentence (it carries the removal over). Each statement is matched by
the first rule of ``RULES`` that applies; image ids are ``ILSVRC2012_val_<digits>`` with or without ``.JPEG``,
always recorded with it (the digits kept as written).

Three rules speak about images the note does not name ("all five images were removed", "apart from X, all images
contain watermarks", "remaining images require cropping"). They need the target's ranked list (``ranked``) and
yield to statements that name images: a named image's record always wins over a group's, and "remaining" means the
ranked images not removed by name. Without ``ranked`` they are listed as unmapped.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pandas as pd

from shiftlab.curate.easyset.records import REASON_SEP, make_records

ID = re.compile(r"ILSVRC2012_val_(\d+)(?:\.JPEG)?")
CLASS_HEADER = re.compile(r"^class (\d+):\s*(.*)$")
STATUS = re.compile(r"^(ACTION REQUIRED|FINAL REMARK)\s*(?:--|:)?\s*")

#: reason keywords → the S5 reason enum, in enum order; a statement takes every reason whose pattern it contains
REASON_KEYWORDS = (
    ("watermark", r"watermark"),
    ("frame/border", r"frame|border|boarder"),
    ("apparent modification", r"modif|filter"),
    ("artificial background", r"background"),
    ("low quality", r"resolution|quality"),
    ("greyscale", r"grey|gray|monochrom|black&white"),
    ("collage", r"collage"),
    ("drawing/painting", r"drawing|painting"),
    ("noise", r"noise"),
    ("small size", r"too small|small size|\bsize\b"),
    ("virtual", r"virtual|video game|digital"),
    ("other", r"visible object"),
)
REMOVE, CROP, CONTAIN = re.compile(r"remov", re.I), re.compile(r"crop", re.I), re.compile(r"\bcontains?\b", re.I)
GROUP = re.compile(r"\b(all|every)\b(?: (?:five|5|other))? images?\b", re.I)
EXCEPT = re.compile(r"(?:\bbut|apart from)\s+(§\d+§)", re.I)
REMAINING = re.compile(r"\bremaining\b(?: (\d+|three|two|one))? images?\b", re.I)
CARRY = re.compile(r"\s+and\s+(?=(?:§\d+§[\s,]*(?:and\s+)?)+due\b)")
WORDS = {"one": 1, "two": 2, "three": 3}
VALID = re.compile(r"\b(no|one|two|\d+) valid images?\b", re.I)

#: the rule table: (name, what it maps). Its order is the order rules are tried in.
RULES = (
    ("status", "a block's 'ACTION REQUIRED' / 'FINAL REMARK' heading: the class's status; 'excluded' in a heading "
               "→ exclude (reason from the keywords of its 'Reason:' sentence)"),
    ("extra", "'X-Tra: <ids> -- why' → add each id; '<id> (required cropping)' → add, cropped"),
    ("remaining", "'remaining [N] images … crop' → crop the first N (default: as many as the set takes) ranked images "
                  "not removed by name"),
    ("group", "'all [five] images' / 'every image' with 'remov' or 'contain' or a reason keyword, no id except after "
              "'but' / 'apart from' → remove the ranked images except those"),
    ("valid-count", "a heading 'only N valid image(s)' / 'no valid image' → remove the ranked images after the first N "
                    "not removed by name. The count is the note's; WHICH images is not said, so these rows take the "
                    "lowest-ranked and are listed as assumptions"),
    ("remove", "ids + 'remov' (or a carried-over removal) → remove"),
    ("crop", "ids + 'crop' → crop"),
    ("contain", "ids + 'contain(s)' + a reason keyword → remove (the image shows the artefact)"),
    ("reason", "'Reason: …' → a note on the class (and the reason of its exclusion)"),
)


@dataclass
class NotesImport:
    """``records``: the intervention records (``RECORD_COLUMNS`` + ``rule``, ``statement``); ``unmapped``: ``class,
    statement, why`` for every statement no rule took; ``conflicts``: ``class, image, actions`` for images named with
    different actions; ``status``: class → heading ('ACTION REQUIRED …' / 'FINAL REMARK …'); ``classes``: the classes
    with a note, in file order."""

    records: pd.DataFrame
    unmapped: pd.DataFrame
    conflicts: pd.DataFrame
    status: dict[int, str]
    classes: list[int]
    blocks: dict[int, str]


def split_blocks(text: str) -> dict[int, str]:
    """Class → its note: the heading line (after ``class N:``), then the rest joined into one line, spaces
    collapsed. The heading stays a line of its own: a status heading ends at its line break, not at a full stop."""
    blocks: dict[int, list[str]] = {}
    current = None
    for line in text.splitlines():
        m = CLASS_HEADER.match(line.strip())
        if m:
            current = int(m.group(1))
            blocks.setdefault(current, []).append(m.group(2))
        elif current is not None:
            blocks[current].append(line)
    return {k: " ".join(v[0].split()) + "\n" + " ".join(" ".join(v[1:]).split()) for k, v in blocks.items()}


def reasons_in(text: str) -> list[str]:
    """The S5 reasons whose keywords ``text`` contains (``REASON_KEYWORDS``)."""
    return [r for r, pat in REASON_KEYWORDS if re.search(pat, text, re.I)]


def statements(note: str) -> tuple[list[tuple[str, bool]], list[str], str | None]:
    """(statements as (text with ids as §i§, carried removal), the ids in order, the status heading or None)."""
    ids: list[str] = []

    def token(m):  # one spelling per file (the notes write ".JPEG" only sometimes); the digits stay as written
        ids.append(f"ILSVRC2012_val_{m.group(1)}.JPEG")
        return f"§{len(ids) - 1}§"
    first, _, rest = ID.sub(token, note).partition("\n")
    status, out = None, []
    m = STATUS.match(first)
    if m:  # the heading line: the class's status, and its text a statement of its own (marked by a NUL)
        status = " ".join(first.split())
        if first[m.end():].strip():
            out.append(("\0" + first[m.end():], False))
        first = ""
    text = f"{first} {rest}".strip()
    parts = [p for p in re.split(r"(?<=[.!?])\s+|\s+(?=X-Tra:|Reason:)", text) if p.strip(" .!?")]
    parts = [q for p in parts for q in _unpunctuated(p)]
    for p in parts:
        pieces = CARRY.split(p)
        if len(pieces) > 1 and not REMOVE.search(pieces[0]):
            pieces = [p]  # only a removal carries over
        out.append((pieces[0], False))
        out += [(q, True) for q in pieces[1:]]
    return out, ids, status


def _unpunctuated(sentence: str) -> list[str]:
    """A sentence that runs on into the next statement without a full stop ("… removed due to X <id> removed due to
    Y."): split before an id that follows a word (not "and", "but", "from") once an action has been said."""
    out, start = [], 0
    for m in re.finditer(r"(?<=[a-z])\s+(?=§\d+§)", sentence):
        left = sentence[start:m.start()]
        if (REMOVE.search(left) or CROP.search(left)) and not re.search(r"\b(and|but|from|of)$", left):
            out.append(left)
            start = m.end()
    return out + [sentence[start:]]


def _names(s: str, ids: list[str]) -> list[str]:
    return [ids[int(i)] for i in re.findall(r"§(\d+)§", s)]


def _reason(s: str) -> str | None:
    return REASON_SEP.join(reasons_in(re.sub(r"§\d+§", " ", s))) or None


def parse_note(k: int, note: str, ranked: Sequence[str] | None, final_size: int = 3) -> tuple[list, list]:
    """(records as dicts with ``rule`` and ``statement``, unmapped as (statement, why)) of one class's note."""
    stmts, ids, _ = statements(note)
    named, group, remaining, counted, rows, unmapped = [], [], [], [], [], []
    for s, carried in stmts:
        shown = re.sub(r"§(\d+)§", lambda m: ids[int(m.group(1))], s.lstrip("\0")).strip()
        names, reason = _names(s, ids), _reason(s)
        rec = {"class": k, "statement": shown}
        heading = s.startswith("\0")
        valid = VALID.search(s) if heading else None
        if valid:
            n = valid.group(1).lower()
            counted.append(({**rec, "action": "remove", "reason": "other", "rule": "valid-count",
                             "note": "the note gives the count, not the images: the lowest-ranked were taken"},
                            0 if n == "no" else int(WORDS.get(n, n))))
            continue
        if heading and re.search(r"\bexcluded\b", s):
            why = next((_reason(t) for t, _ in stmts if t.startswith("Reason:")), None)
            rows.append({**rec, "image": None, "action": "exclude", "reason": why or "other", "rule": "status"})
            continue
        if s.startswith("X-Tra:"):
            head = s.split(" -- ")[0]
            for i in re.findall(r"§(\d+)§", head):
                crop = bool(re.search(rf"§{i}§\s*\(required cropping\)", head))
                named.append({**rec, "image": ids[int(i)], "action": "add", "cropped": crop, "rule": "extra"})
            continue
        if REMAINING.search(s) and CROP.search(s):
            n = REMAINING.search(s).group(1)
            remaining.append(({**rec, "action": "crop", "reason": reason, "rule": "remaining"},
                              int(WORDS.get(n, n)) if n else final_size))
            continue
        exceptions = set(EXCEPT.findall(s))
        if GROUP.search(s) and set(re.findall(r"§\d+§", s)) <= exceptions and (
                REMOVE.search(s) or CONTAIN.search(s) or reason):
            group.append(({**rec, "action": "remove", "reason": reason or "other", "rule": "group"},
                          {ids[int(t.strip('§'))] for t in exceptions}))
            continue
        if names and (REMOVE.search(s) or carried):
            named += [{**rec, "image": f, "action": "remove", "reason": reason or "other", "rule": "remove"}
                      for f in names]
            if not reason:
                unmapped.append((shown, "removal without a recognised reason (recorded as 'other')"))
        elif names and CROP.search(s):
            named += [{**rec, "image": f, "action": "crop", "reason": reason, "rule": "crop"} for f in names]
        elif names and CONTAIN.search(s) and reason:
            named += [{**rec, "image": f, "action": "remove", "reason": reason, "rule": "contain"} for f in names]
        elif s.startswith("Reason:") or (heading and not names):
            continue  # a note on the class (read by the heading rule), or a heading's status text
        else:
            unmapped.append((shown, "names images but no action (remove / crop)" if names else
                             "no image and no action"))
    by_name = {r["image"] for r in named if r["action"] != "add"}
    removed_by_name = {r["image"] for r in named if r["action"] == "remove"}
    if (group or remaining or counted) and ranked is None:
        unmapped += [(r["statement"], "speaks of unnamed images: needs the ranking (--ranking)")
                     for r, _ in group + remaining + counted]
        group, remaining, counted = [], [], []
    for r, keep in group:
        rows += [{**r, "image": f} for f in ranked if f not in keep and f not in by_name]
    for r, n in remaining:
        left = [f for f in ranked if f not in removed_by_name][:n]
        rows += [{**r, "image": f} for f in left]
        by_name |= set(left)
    grouped = {r["image"] for r in rows if r["rule"] == "group"}
    for r, n in counted:  # only what no statement already removed: the count is of the class's valid images
        survivors = [f for f in ranked if f not in removed_by_name and f not in grouped]
        rows += [{**r, "image": f} for f in survivors[n:] if f not in by_name]
    # group rows first, so that a named image's record (later) is the one in force
    return [r for r in rows if r["image"] is None or r["rule"] in ("group", "valid-count")] + \
        [r for r in rows if r["rule"] == "remaining"] + named, unmapped


def import_notes(text: str, ranked: Mapping[int, Sequence[str]] | None = None, final_size: int = 3) -> NotesImport:
    """The records of SCOOTER's ``notes.txt`` text (module docstring); ``ranked``: the target's ranked files per
    class (the ``safebets.json`` lists of the target model)."""
    blocks = split_blocks(text)
    rows, unmapped, status = [], [], {}
    for k, note in blocks.items():
        got, miss = parse_note(k, note, None if ranked is None else list(ranked.get(k, [])), final_size)
        rows += got
        unmapped += [(k, s, why) for s, why in miss]
        _, _, st = statements(note)
        if st:
            status[k] = st
    recs = make_records(rows)
    recs["rule"] = [r["rule"] for r in rows]
    recs["statement"] = [r["statement"] for r in rows]
    named = recs[recs["rule"].isin(["remove", "crop", "contain"])]
    acts = named.groupby(["class", "image"])["action"].agg(lambda a: sorted(set(a)))
    conflicts = acts[acts.map(len) > 1].reset_index().rename(columns={"action": "actions"})
    return NotesImport(recs, pd.DataFrame(unmapped, columns=["class", "statement", "why"]), conflicts, status,
                       list(blocks), blocks)
