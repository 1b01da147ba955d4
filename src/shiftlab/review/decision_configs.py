"""The configurations of ``images`` review tasks: which decisions a person can take on an image (each a digit
key), with what reasons and whether it takes a crop box; the built-in ones live in ``review/configs/*.json``."""

from __future__ import annotations

import json
from collections.abc import Mapping
from importlib import resources

from shiftlab.errors import InputError
from shiftlab.review.log import LIMITS

#: the keys that pick a reason in the app (images.js): the digits, then 0, - and = (S5 has twelve reasons)
REASON_KEYS = "1234567890-="
MAX_REASONS = len(REASON_KEYS)


def builtin_names() -> list[str]:
    """The names of the built-in configurations (``watermarks``, ``spurious-components``…)."""
    folder = resources.files("shiftlab.review").joinpath("configs")
    return sorted(f.name[:-5] for f in folder.iterdir() if f.name.endswith(".json"))


def builtin_config(name: str) -> dict:
    """The built-in ``images`` review configuration ``name`` (``watermarks``) as a dict; ``InputError`` if unknown."""
    try:
        text = resources.files("shiftlab.review").joinpath("configs", f"{name}.json").read_text()
    except (FileNotFoundError, OSError):
        known = ", ".join(builtin_names())
        raise InputError(f"no built-in review configuration {name!r} (built in: {known})") from None
    return json.loads(text)


def check_config(cfg: Mapping) -> dict:
    """Decisions (1–9, one digit key each), each with up to ``MAX_REASONS`` reasons (keys ``REASON_KEYS``) and
    whether it takes a crop box."""
    decisions = cfg.get("decisions") if isinstance(cfg, Mapping) else None
    if not isinstance(decisions, list) or not 1 <= len(decisions) <= 9:
        raise InputError("a review configuration needs 'decisions': a list of 1 to 9 {name, reasons?, crop?}")
    out = []
    for d in decisions:
        if not isinstance(d, Mapping) or not isinstance(d.get("name"), str) or not d["name"].strip():
            raise InputError(f"decision {str(d)[:80]!r}: needs a 'name'")
        if len(d["name"].strip()) > LIMITS["decision"]:
            raise InputError(f"decision {d['name'][:40]!r}…: at most {LIMITS['decision']} characters (the log's limit)")
        reasons = d.get("reasons", [])
        if not isinstance(reasons, list) or len(reasons) > MAX_REASONS or not all(isinstance(r, str) for r in reasons):
            raise InputError(f"decision {d['name']!r}: 'reasons' must be a list of at most {MAX_REASONS} strings")
        if any(len(r) > LIMITS["reason"] for r in reasons):
            raise InputError(f"decision {d['name']!r}: a reason has at most {LIMITS['reason']} characters")
        crop = d.get("crop", "no")
        if crop not in ("no", "optional", "required"):
            raise InputError(f"decision {d['name']!r}: 'crop' is one of no, optional, required")
        name = d["name"].strip()
        if name == "undo" or name in {o["name"] for o in out}:
            raise InputError(f"decision {name!r}: names must be unique and not 'undo' (the log's own event)")
        out.append({"name": name, "reasons": reasons, "crop": crop, "help": str(d.get("help", ""))})
    return {"title": str(cfg.get("title", "Image decisions")), "instructions": str(cfg.get("instructions", "")),
            "decisions": out}
