"""Intervention records (SPECS S5): every change to a class's ranked list is one row ``class, image, action, reason,
crop, cropped, note``; the statistics, the build and the audit all read these rows, never prose.

``action``: ``keep`` / ``crop`` / ``remove`` (a ranked or extra image), ``add`` (an extra put into the set; ``cropped``
when it needs a crop too) or ``exclude`` (the whole class; ``image`` is None). ``reason``: one of ``REASONS``, or
several joined by ``"; "`` when a source names them for a group of images without saying which image had which
(the published notes do). Per image, the last keep/crop/remove record is in force.
"""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from shiftlab.errors import InputError

REASONS = ("watermark", "frame/border", "apparent modification", "artificial background", "low quality",
           "greyscale", "collage", "drawing/painting", "noise", "small size", "virtual", "other")
ACTIONS = ("keep", "crop", "remove", "add", "exclude")
RECORD_COLUMNS = ("class", "image", "action", "reason", "crop", "cropped", "note")
#: the stage of an image with S5's sizes: where in the target's ranking it came from (``stage_of``)
STAGES = ("top-3", "top-5", "extra")
REASON_SEP = "; "


def make_records(rows: Iterable[dict]) -> pd.DataFrame:
    """Checked records: ``RECORD_COLUMNS`` (missing optional fields filled), ``InputError`` for an unknown action or
    reason or an image-less record that is not an exclusion."""
    out = []
    for r in rows:
        action = r.get("action")
        if action not in ACTIONS:
            raise InputError(f"record {r!r}: action is one of {', '.join(ACTIONS)}")
        for reason in split_reasons(r.get("reason")):
            if reason not in REASONS:
                raise InputError(f"record {r!r}: reason {reason!r} is not one of {', '.join(REASONS)}")
        if r.get("image") is None and action != "exclude":
            raise InputError(f"record {r!r}: only an exclusion has no image")
        crop = tuple(int(v) for v in r["crop"]) if isinstance(r.get("crop"), (tuple, list)) else None
        reason = r.get("reason") if isinstance(r.get("reason"), str) else None  # NaN from a DataFrame: none
        out.append({"class": int(r["class"]), "image": r.get("image"), "action": action, "reason": reason,
                    "crop": crop, "cropped": bool(r.get("cropped", action == "crop")), "note": r.get("note")})
    df = pd.DataFrame(out, columns=list(RECORD_COLUMNS))
    for c in ("image", "reason", "crop", "note"):  # None stays None (pandas would make some of them NaN)
        df[c] = df[c].astype(object).where(df[c].notna(), None)
    return df


def split_reasons(reason: str | None) -> list[str]:
    """The reasons of one record (none, one, or a group's several)."""
    return [s for s in reason.split(REASON_SEP) if s] if isinstance(reason, str) else []  # None or NaN: none


def stage_of(rank: int, final_size: int = 3, top: int = 5) -> str:
    """``top-3`` / ``top-5`` / ``extra`` (S5's sizes; ``top-<final_size>`` / ``top-<top>`` for others) for a 1-based
    rank (0 or beyond ``top``: an extra)."""
    return f"top-{final_size}" if 1 <= rank <= final_size else f"top-{top}" if final_size < rank <= top else "extra"
