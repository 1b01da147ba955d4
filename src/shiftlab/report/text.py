"""Text in reports: a little markdown to safe HTML (``markdownish``), plain text for the console, slugs and
file stems for anchors and figure files. Everything not marked safe is escaped."""

from __future__ import annotations

import re

from markupsafe import Markup, escape

from shiftlab.errors import InputError

# ------------------------------------------------------------------------------------------------ text

_INLINE = [
    (re.compile(r"\*\*(.+?)\*\*"), r"<strong>\1</strong>"),
    (re.compile(r"(?<![\w*])\*(?!\s)(.+?)(?<!\s)\*(?![\w*])"), r"<em>\1</em>"),
]
_LINK = re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)")
_SAFE_URL = re.compile(r"^(https?://|mailto:|#|[^:]*$)", re.I)  # no javascript:, data: and the like


def inline_markup(text: str) -> str:
    """Escape ``text``, then turn the few inline markdown marks into tags (code spans stay literal)."""
    parts = re.split(r"(`[^`]+`)", str(text))
    out = []
    for part in parts:
        if part.startswith("`") and part.endswith("`") and len(part) > 1:
            out.append(f"<code>{escape(part[1:-1])}</code>")
            continue
        s = str(escape(part))
        for rx, rep in _INLINE:
            s = rx.sub(rep, s)
        s = _LINK.sub(lambda m: f'<a href="{m.group(2)}">{m.group(1)}</a>' if _SAFE_URL.match(m.group(2))
                      else m.group(0), s)
        out.append(s)
    return "".join(out)


def markdownish(text: str | Markup | None) -> Markup:
    """HTML for a little markdown: paragraphs split by blank lines, ``- `` bullet lists, inline marks.

    Everything else is escaped. A ``Markup`` input is returned unchanged (trusted HTML).
    """
    if text is None:
        return Markup("")
    if isinstance(text, Markup):
        return text
    blocks = [b for b in re.split(r"\n\s*\n", str(text).strip()) if b.strip()]
    html = []
    for b in blocks:
        lines = [ln.strip() for ln in b.strip().splitlines()]
        if all(re.match(r"^[-*] ", ln) for ln in lines):
            items = "".join(f"<li>{inline_markup(ln[2:])}</li>" for ln in lines)
            html.append(f"<ul>{items}</ul>")
        else:
            html.append(f"<p>{inline_markup(' '.join(lines))}</p>")
    return Markup("\n".join(html))


def plain_text(text: str | Markup | None) -> str:
    """The text of a paragraph for a terminal: markdown marks and tags dropped."""
    if text is None:
        return ""
    s = Markup(text).striptags() if isinstance(text, Markup) else str(text)
    s = re.sub(r"\*\*(.+?)\*\*", r"\1", s)
    s = re.sub(r"`([^`]+)`", r"\1", s)
    s = _LINK.sub(r"\1 (\2)", s)
    return "\n\n".join(" ".join(b.split()) if not b.lstrip().startswith(("- ", "* ")) else b.strip()
                       for b in re.split(r"\n\s*\n", s.strip()))


def slug(text: str) -> str:
    """A section anchor from ``text``: lower-case letters and digits joined by ``-`` ("section" when none)."""
    s = re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-")
    return s or "section"


def file_stem(name: str) -> str:
    """A file name stem for a figure or image from ``name``: an image extension dropped, other characters than
    letters, digits, ``.``, ``_`` and ``-`` replaced by ``-``; InputError when nothing usable is left."""
    stem = re.sub(r"\.(png|jpe?g|gif|webp)$", "", str(name), flags=re.I)
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", stem).strip(".-")
    if not stem:
        raise InputError(f"figure name {name!r} has no usable characters; use letters, digits, '-' or '_'")
    return stem
