"""Mistake records in the ``vit3b_mistakes.json`` shape of Vasudevan et al. 2022, and the category names.

``{file name: {"top_prediction": int, "failure category": str, "failure severity": str}}``. ``read_mistakes``
merges the two spellings of the OOV category and can fold Borderline into Minor; ``write_mistakes`` writes the same
shape back (sorted by file name), so a file round-trips.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd

from shiftlab.errors import InputError
from shiftlab.fsutil import atomic_write_bytes

NOT_A_MISTAKE = "Not a mistake"
FINE_GRAINED = "Fine-grained error"
FINE_GRAINED_OOV = "Fine-grained error with OOV"
SPURIOUS = "Spurious Correlation"
NON_PROTOTYPICAL = "Non-prototypical"
MULTILABEL_OPTIONS = "Fine-grained with Multilabel Options"
MAJOR = "Major"
#: the categories of the published records, then the two ends of the automatic order
CATEGORIES = (FINE_GRAINED, FINE_GRAINED_OOV, SPURIOUS, NON_PROTOTYPICAL, MULTILABEL_OPTIONS, MAJOR, NOT_A_MISTAKE)
#: the order in which ``precategorize`` tries them
AUTO_ORDER = (NOT_A_MISTAKE, FINE_GRAINED, FINE_GRAINED_OOV, SPURIOUS, MAJOR)
SEVERITIES = ("Major", "Minor", "Borderline")
#: suggested severities of the automatic categories (the reviewer decides)
SUGGESTED_SEVERITY = {NOT_A_MISTAKE: None, FINE_GRAINED: "Minor", FINE_GRAINED_OOV: "Minor", SPURIOUS: "Major",
                      MAJOR: "Major"}


def _key(s: str) -> str:
    return " ".join(str(s).replace("-", " ").replace("_", " ").lower().split())


#: spellings seen in the published files (greedy_soups_mistakes.json writes "Fine-grained with OOV")
_CATEGORY_ALIASES = {_key(c): c for c in CATEGORIES}
_CATEGORY_ALIASES.update({_key("Fine-grained with OOV"): FINE_GRAINED_OOV, _key("not mistake"): NOT_A_MISTAKE,
                          _key("correct"): NOT_A_MISTAKE, _key("spurious"): SPURIOUS})
_SEVERITY_ALIASES = {_key(s): s for s in SEVERITIES}


def normalize_category(name: str) -> str:
    """The canonical spelling of a mistake category; an unknown one is an ``InputError``."""
    c = _CATEGORY_ALIASES.get(_key(name))
    if c is None:
        raise InputError(f"unknown mistake category {name!r}; one of: {', '.join(CATEGORIES)}")
    return c


def normalize_severity(name: str, *, fold_borderline: bool = False) -> str:
    """The canonical spelling of a mistake severity (one of ``SEVERITIES``); an unknown one is an ``InputError``.

    ``fold_borderline`` (default False) returns Borderline as Minor.
    """
    s = _SEVERITY_ALIASES.get(_key(name))
    if s is None:
        raise InputError(f"unknown mistake severity {name!r}; one of: {', '.join(SEVERITIES)}")
    return "Minor" if fold_borderline and s == "Borderline" else s


# --- mistake records ---------------------------------------------------------------------------------------
RECORD_COLUMNS = ["file_name", "top_prediction", "category", "severity"]


def read_mistakes(path: str | os.PathLike, *, fold_borderline: bool = False) -> pd.DataFrame:
    """Read a ``*_mistakes.json`` file: DataFrame ``file_name, top_prediction, category, severity``.

    Category spellings are merged ("Fine-grained with OOV" → "Fine-grained error with OOV");
    ``fold_borderline`` turns Borderline severities into Minor (as Vasudevan et al. do for their counts).
    """
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise InputError(f"{path}: not a readable JSON file ({e})") from None
    if not isinstance(doc, dict):
        raise InputError(f"{path}: a mistakes file maps file names to {{top_prediction, failure category, "
                         "failure severity}}")
    rows = []
    for name, rec in doc.items():
        try:
            rows.append((str(name), int(rec["top_prediction"]), normalize_category(rec["failure category"]),
                         normalize_severity(rec["failure severity"], fold_borderline=fold_borderline)))
        except (KeyError, TypeError, ValueError) as e:
            raise InputError(f"{path}: entry {name!r} lacks or mistypes {e} (needs top_prediction, "
                             "'failure category', 'failure severity')") from None
        except InputError as e:
            raise InputError(f"{path}: entry {name!r}: {e}") from None
    return pd.DataFrame(rows, columns=RECORD_COLUMNS)


def mistakes_to_json(records: pd.DataFrame, *, include_not_mistakes: bool = False) -> dict:
    """The ``vit3b_mistakes.json`` dict of a records table (sorted by file name).

    Rows categorised "Not a mistake" are left out unless asked for: the published files list mistakes only.
    """
    missing = [c for c in RECORD_COLUMNS if c not in records.columns]
    if missing:
        raise InputError(f"mistake records need the columns {', '.join(RECORD_COLUMNS)} (missing {', '.join(missing)})")
    dup = records["file_name"][records["file_name"].duplicated()]
    if len(dup):
        raise InputError(f"mistake records list {dup.iloc[0]!r} twice")
    out = {}
    for r in records.sort_values("file_name", kind="stable").itertuples(index=False):
        cat = normalize_category(r.category)
        if cat == NOT_A_MISTAKE and not include_not_mistakes:
            continue
        if r.severity is None or r.severity != r.severity:
            raise InputError(f"mistake record {r.file_name!r} has no severity; every exported mistake needs one")
        out[str(r.file_name)] = {"top_prediction": int(r.top_prediction), "failure category": cat,
                                 "failure severity": normalize_severity(r.severity)}
    return out


def write_mistakes(records: pd.DataFrame, path: str | os.PathLike, *, include_not_mistakes: bool = False) -> Path:
    """Write records as a ``*_mistakes.json`` file (atomically); ``read_mistakes`` reads it back unchanged."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = mistakes_to_json(records, include_not_mistakes=include_not_mistakes)
    atomic_write_bytes(path, (json.dumps(doc, indent=1) + "\n").encode())
    return path
