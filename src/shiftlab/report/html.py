"""Self-contained HTML reports: one ``index.html`` with PNG files beside it, and the same tables as text.

A :class:`Report` is a title, an intro and independent :class:`Section` s, each with its own anchor in the
table of contents. Sections hold blocks in order: paragraphs, notes, tables, figures and image grids.
Modules build their sections on their own and a report collects them::

    r = Report("Digits world", "Accuracy of the embedded zoo on the **shifted** pool.")
    sec = r.section("Accuracy", "Top-1 with 95% Clopper–Pearson intervals.")
    sec.table(results, formats={"top1": "{:.1%}"}, intervals={"top1": ("top1_low", "top1_high")})
    sec.figure(accuracy_scatter(df), "scatter", "Shifted against original accuracy.")
    r.write("out/report")          # out/report/index.html, out/report/scatter.png
    print(r.render_text())         # the tables for a terminal

Text is escaped everywhere: a model called ``<script>`` shows as that text. Paragraphs accept a little
markdown (``**bold**``, ``*italic*``, ```code```, ``[text](url)``, ``- `` bullets, blank lines between
paragraphs); a ``markupsafe.Markup`` string is trusted and inserted as HTML unchanged.
"""

from __future__ import annotations

import datetime as _dt
import io
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from markupsafe import Markup

from shiftlab import __version__
from shiftlab.errors import InputError
from shiftlab.fsutil import atomic_write_bytes
from shiftlab.report.figure_cache import FigureCall
from shiftlab.report.tables import TableBlock, default_format, format_table
from shiftlab.report.text import file_stem, inline_markup, markdownish, plain_text, slug

__all__ = ["Report", "Section"]

#: files written into the report folder by the last ``write``; stale ones are removed on the next
MARKER = ".shiftlab-report.json"
#: figures are rendered at this resolution and shown at 100 CSS px per inch: sharp on high-DPI screens
DPI = 150
_IMAGE_TYPES = {b"\x89PNG": ".png", b"\xff\xd8\xff": ".jpg", b"GIF8": ".gif", b"RIFF": ".webp"}
_TEMPLATES = Path(__file__).parent / "templates"

# ------------------------------------------------------------------------------------------------ blocks

@dataclass
class TextBlock:
    """A paragraph, sub-heading or note (``level`` ``info`` or ``warning``) of a section."""

    text: str | Markup
    kind: str = "paragraph"  # paragraph | heading | note
    level: str = "info"  # of a note: info | warning

    @property
    def html(self) -> Markup:
        """The text as HTML: ``markdownish`` for paragraphs and notes, inline marks only for a heading."""
        return markdownish(self.text) if self.kind != "heading" else Markup(inline_markup(self.text))


@dataclass
class Asset:
    """A file written beside ``index.html``: its name, bytes and size (width, height) in px."""

    filename: str
    data: bytes = field(repr=False)
    width: int
    height: int


@dataclass
class FigureBlock:
    """A figure: its image file, caption, alt text and displayed width in CSS pixels."""

    asset: Asset
    caption: str | None
    alt: str
    display_width: int
    kind: str = "figure"


@dataclass
class ImagesBlock:
    """A grid of thumbnails: (image file, caption or None) pairs, the grid's caption and the displayed width of each
    thumbnail in CSS pixels.
    """

    items: list[tuple[Asset, str | None]]
    caption: str | None
    size: int
    auto_prefix: str | None = None  # the file-name prefix when derived from the section anchor
    kind: str = "images"


def _png_size(data: bytes) -> tuple[int, int]:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        return im.size


def _image_bytes(src) -> tuple[bytes, str]:
    """Bytes and file extension of an image given as a path, PIL image or array (the latter two as PNG)."""
    from PIL import Image

    if isinstance(src, (str, Path)):
        p = Path(src)
        if not p.is_file():
            raise InputError(f"image {p} does not exist")
        data = p.read_bytes()
        for magic, ext in _IMAGE_TYPES.items():
            if data.startswith(magic):
                return data, ext
        with Image.open(io.BytesIO(data)) as im:  # other formats: converted, browsers may not show them
            return _image_bytes(im.copy())
    if isinstance(src, Image.Image):
        im = src
    else:
        a = np.asarray(src)
        if a.ndim == 3 and a.shape[0] in (1, 3) and a.shape[-1] not in (1, 3):
            a = np.moveaxis(a, 0, -1)
        if a.ndim == 3 and a.shape[-1] == 1:
            a = a[..., 0]
        if a.dtype.kind == "f":
            a = np.clip(a * (255 if a.max(initial=0) <= 1 else 1), 0, 255).round()
        im = Image.fromarray(a.astype(np.uint8))
    if im.mode not in ("L", "RGB", "RGBA", "P"):
        im = im.convert("RGB")
    buf = io.BytesIO()
    im.save(buf, format="PNG", optimize=True)
    return buf.getvalue(), ".png"


def _thumbnail(data: bytes, ext: str, max_side: int) -> tuple[bytes, str, int, int]:
    """Downscale an image larger than ``max_side`` (PNG out); small ones are kept byte for byte."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        w, h = im.size
        if max(w, h) <= max_side:
            return data, ext, w, h
        im = im.convert("RGB") if im.mode not in ("L", "RGB") else im.copy()
        im.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
        buf = io.BytesIO()
        im.save(buf, format="PNG", optimize=True)
        return buf.getvalue(), ".png", im.size[0], im.size[1]


# ------------------------------------------------------------------------------------------------ section

class Section:
    """A titled part of a report with its own anchor; blocks appear in the order they are added.

    Parameters
    ----------
    title : str
    text : str, optional
        First paragraph(s), in the little markdown of ``markdownish``.
    anchor : str, optional
        Fragment id (``#anchor``); by default the slug of the title, made unique within the report.

    Build a section anywhere (an analysis module can return one) and ``Report.add`` it, or let
    ``Report.section`` create and add it in one step. Methods return the section, so calls chain.
    """

    def __init__(self, title: str, text: str | Markup | None = None, *, anchor: str | None = None):
        self.title = str(title)
        self.anchor = slug(anchor if anchor is not None else title)
        self.blocks: list = []
        if text:
            self.paragraph(text)

    def __repr__(self) -> str:
        return f"Section({self.title!r}, {len(self.blocks)} blocks)"

    # -- text
    def paragraph(self, text: str | Markup) -> Section:
        """Add text (blank lines separate paragraphs; ``- `` lines make a list)."""
        self.blocks.append(TextBlock(text))
        return self

    def heading(self, text: str) -> Section:
        """Add a sub-heading inside the section."""
        self.blocks.append(TextBlock(text, kind="heading"))
        return self

    def note(self, text: str | Markup, level: str = "info") -> Section:
        """Add a boxed remark; ``level="warning"`` for what a reader must not miss (excluded images,
        incomplete results)."""
        if level not in ("info", "warning"):
            raise InputError(f"note level must be 'info' or 'warning', got {level!r}")
        self.blocks.append(TextBlock(text, kind="note", level=level))
        return self

    # -- tables
    def table(
        self,
        df: pd.DataFrame,
        caption: str | None = None,
        *,
        formats: Mapping[str, str | Callable] | None = None,
        intervals: Mapping[str, tuple[str, str]] | None = None,
        highlight: Mapping[str, str] | Sequence[bool] | None = None,
        index: bool = False,
        max_rows: int | None = None,
    ) -> Section:
        """Add a table.

        Parameters
        ----------
        df : DataFrame
            Shown as is: rename columns before for display names.
        caption : str, optional
        formats : dict column → format string or callable, optional
            E.g. ``{"top1": "{:.1%}", "n": "{:,}"}``. Other columns: integers with thousands separators,
            floats to 4 significant digits, NaN as "—".
        intervals : dict column → (low column, high column), optional
            Shows ``"71.2% [69.8, 72.5]"`` in ``column`` (the ends in its format) and hides the two
            interval columns.
        highlight : dict column → "max" | "min", or sequence of bool, optional
            Bold the best value of each given column, or shade the flagged rows.
        index : bool, default=False
            Show the DataFrame's index as the first column(s).
        max_rows : int, optional
            Show only the first ``max_rows`` rows; the caption then says how many there are.

        Numeric columns are right-aligned with tabular digits.
        """
        self.blocks.append(format_table(df, caption=caption, formats=formats, intervals=intervals,
                                        highlight=highlight, index=index, max_rows=max_rows))
        return self

    # -- figures
    def figure(self, fig, name: str, caption: str | None = None, *, alt: str | None = None,
               dpi: int = DPI) -> Section:
        """Add a figure, saved as ``<name>.png`` beside ``index.html``.

        Parameters
        ----------
        fig : matplotlib Figure, ``FigureCall``, or path of an image file (PNG, JPEG, GIF, WebP)
            A Figure is rendered now (at ``dpi``, tight bounding box) and closed when pyplot made it; a
            ``FigureCall`` is made and rendered only when the active figure cache has no PNG for its content
            (``shiftlab.report.figure_cache``).
        name : str
            File name without extension; unique within the report.
        caption : str, optional
        alt : str, optional
            Alternative text; defaults to the caption.
        dpi : int, default=150
            Shown at 100 CSS pixels per inch, so the PNG is sharp on high-density screens.
        """
        stem = file_stem(name)
        if isinstance(fig, FigureCall) or hasattr(fig, "savefig"):
            data = fig.png(dpi, lambda f: _draw(f, dpi)) if isinstance(fig, FigureCall) else _draw(fig, dpi)
            ext = ".png"
            w, h = _png_size(data)
            display = round(w * 100 / dpi)
        else:
            data, ext = _image_bytes(fig)
            w, h = _png_size(data)
            display = w
        self.blocks.append(FigureBlock(Asset(stem + ext, data, w, h), caption, alt or caption or stem, display))
        return self

    def images(self, items: Sequence, caption: str | None = None, *, name: str | None = None,
               size: int = 128, max_side: int = 512) -> Section:
        """Add a grid of thumbnails, copied beside ``index.html`` as ``<name>-000.png`` etc.

        Parameters
        ----------
        items : sequence of image or (image, caption)
            An image is a path, a PIL image or an array ((H, W), (H, W, 3), uint8 or floats in [0, 1]).
        caption : str, optional
            Caption of the whole grid.
        name : str, optional
            File-name prefix; by default ``<section anchor>-images-<k>``.
        size : int, default=128
            Displayed width of each thumbnail in CSS pixels; small images are enlarged with visible
            pixels rather than blurred.
        max_side : int, default=512
            Larger images are downscaled to this many pixels on their longer side.
        """
        k = sum(isinstance(b, ImagesBlock) for b in self.blocks)
        prefix = file_stem(name) if name else f"{self.anchor}-images-{k}"
        out = []
        for i, it in enumerate(items):
            src, cap = (it if isinstance(it, tuple) and len(it) == 2 else (it, None))
            data, ext = _image_bytes(src)
            data, ext, w, h = _thumbnail(data, ext, max_side)
            out.append((Asset(f"{prefix}-{i:03d}{ext}", data, w, h), None if cap is None else str(cap)))
        if not out:
            raise InputError("images() needs at least one image")
        self.blocks.append(ImagesBlock(out, caption, size, auto_prefix=None if name else prefix))
        return self

    def _reanchor(self, anchor: str) -> None:
        """Take a new anchor, renaming the image files whose names were derived from the old one."""
        old, self.anchor = self.anchor, anchor
        for b in self.blocks:
            if isinstance(b, ImagesBlock) and b.auto_prefix and b.auto_prefix.startswith(old + "-images-"):
                new = anchor + b.auto_prefix[len(old):]
                for a, _ in b.items:
                    a.filename = new + a.filename[len(b.auto_prefix):]
                b.auto_prefix = new

    # -- output helpers
    def assets(self) -> list[Asset]:
        """The files of the section's figures and image grids, in the order of the blocks."""
        out = []
        for b in self.blocks:
            if isinstance(b, FigureBlock):
                out.append(b.asset)
            elif isinstance(b, ImagesBlock):
                out.extend(a for a, _ in b.items)
        return out


def _draw(fig, dpi: int) -> bytes:
    """The PNG of a matplotlib Figure (tight bounding box, white), which is then closed."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight", pad_inches=0.08, facecolor="white")
    _close(fig)
    return buf.getvalue()


def _close(fig) -> None:
    """Close a pyplot-managed figure (a plain ``Figure`` has no registry to leave)."""
    if getattr(getattr(fig, "canvas", None), "manager", None) is not None:
        import matplotlib.pyplot as plt

        plt.close(fig)


# ------------------------------------------------------------------------------------------------ report

class Report:
    """A self-contained HTML report: title, intro, table of contents, independent sections.

    Parameters
    ----------
    title : str
    intro : str or Markup, optional
        Text under the title (little markdown, see ``markdownish``).
    meta : dict, optional
        Facts about the run shown in the header, e.g. ``{"dataset": "digits-pool-1", "seed": 0}``.
    created : datetime, optional
        Shown in the header; default now. Fix it for byte-identical output.
    kind : str, default="shiftlab report"
        The small line above the title saying what the page is.
    """

    def __init__(self, title: str, intro: str | Markup | None = None, *, meta: Mapping[str, Any] | None = None,
                 created: _dt.datetime | None = None, kind: str = "shiftlab report"):
        self.title = str(title)
        self.intro = intro
        self.meta = dict(meta or {})
        self.created = created or _dt.datetime.now().astimezone()
        self.kind = kind
        self.sections: list[Section] = []

    def __repr__(self) -> str:
        return f"Report({self.title!r}, {len(self.sections)} sections)"

    def section(self, title: str, text: str | Markup | None = None, *, anchor: str | None = None) -> Section:
        """Create a section, add it at the end and return it."""
        return self.add(Section(title, text, anchor=anchor))

    def add(self, section: Section) -> Section:
        """Add a section built elsewhere; its anchor gets a suffix if another section has it already.

        Raises ``InputError`` when a file name of its figures is used by an earlier section.
        """
        taken = {s.anchor for s in self.sections} | {"top", "contents"}
        base, k, anchor = section.anchor, 2, section.anchor
        while anchor in taken:
            anchor = f"{base}-{k}"
            k += 1
        section._reanchor(anchor)
        files = {a.filename: s.title for s in self.sections for a in s.assets()}
        for a in section.assets():
            if a.filename in files:
                raise InputError(f"figure file {a.filename} is used by sections {files[a.filename]!r} and "
                                 f"{section.title!r}; give one of them another name")
        self.sections.append(section)
        return section

    # -- HTML
    def render_html(self) -> str:
        """The page as a string (asset files are referenced by name, relative to it)."""
        import jinja2


        self._check_assets()
        env = jinja2.Environment(loader=jinja2.FileSystemLoader(_TEMPLATES), autoescape=True,
                                 undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
        css = (_TEMPLATES / "report.css").read_text(encoding="utf-8")
        return env.get_template("report.html.j2").render(
            report=self, intro=markdownish(self.intro), css=Markup(css), version=__version__,
            created=self.created.strftime("%Y-%m-%d %H:%M"),
            meta=[(str(k), default_format(v)) for k, v in self.meta.items()])

    def _check_assets(self) -> None:
        seen: dict[str, str] = {}
        for s in self.sections:
            for a in s.assets():
                if seen.setdefault(a.filename, s.title) != s.title or a.filename == "index.html":
                    raise InputError(f"figure file {a.filename} is used twice (sections {seen[a.filename]!r} and "
                                     f"{s.title!r}); give one of them another name")

    def write(self, folder: str | Path) -> Path:
        """Write ``index.html`` and the figure files into ``folder``; returns the path of ``index.html``.

        Each file is written to a temporary name and renamed into place, figures first and the page last,
        so a reader never sees a half-written file or a page whose figures are missing. Files that an
        earlier report wrote into the folder and this one does not are removed; other files are left alone.
        """
        folder = Path(folder)
        if folder.exists() and not folder.is_dir():
            raise InputError(f"{folder} is a file; give a folder for the report")
        folder.mkdir(parents=True, exist_ok=True)
        html = self.render_html()
        assets = [a for s in self.sections for a in s.assets()]
        for a in assets:
            atomic_write_bytes(folder / a.filename, a.data)
        atomic_write_bytes(folder / "index.html", html.encode("utf-8"))
        new = {a.filename for a in assets} | {"index.html"}
        marker = folder / MARKER
        try:
            old = set(json.loads(marker.read_text())["files"]) if marker.is_file() else set()
        except (ValueError, KeyError, TypeError):
            old = set()
        for name in sorted(old - new):
            p = folder / name
            if p.parent == folder and p.is_file():  # only plain names this module wrote
                p.unlink()
        atomic_write_bytes(marker, json.dumps({"files": sorted(new)}, indent=1).encode())
        return folder / "index.html"

    # -- text
    def render_text(self, width: int = 100) -> str:
        """The report for a terminal or a log: headings, paragraphs and the same formatted tables."""
        from rich.console import Console

        buf = io.StringIO()
        con = Console(file=buf, width=width, force_terminal=False, color_system=None, highlight=False,
                      emoji=False, soft_wrap=False)
        self._to(con)
        return buf.getvalue()

    def to_console(self, console=None) -> None:
        """Print the report (tables as rich tables) to ``console`` (default: a rich Console on stdout)."""
        from rich.console import Console

        self._to(console or Console(highlight=False, emoji=False))

    def _to(self, con) -> None:
        from rich import box
        from rich.rule import Rule
        from rich.table import Table
        from rich.text import Text

        con.print(Text(self.title, style="bold"))
        if self.meta:
            con.print(Text(" · ".join(f"{k}: {default_format(v)}" for k, v in self.meta.items())))
        if self.intro:
            con.print(Text(plain_text(self.intro)))
        for s in self.sections:
            con.print()
            con.print(Rule(Text(s.title, style="bold"), align="left"))
            for b in s.blocks:
                if isinstance(b, TextBlock):
                    prefix = {"heading": "", "note": "warning: " if b.level == "warning" else "note: "}
                    con.print(Text(prefix.get(b.kind, "") + plain_text(b.text),
                                   style="bold" if b.kind == "heading" else ""))
                elif isinstance(b, TableBlock):
                    title = " — ".join(x for x in (b.caption, b.shown_note) if x) or None
                    t = Table(title=Text(title) if title else None, box=box.SIMPLE_HEAD, title_justify="left")
                    for c, num in zip(b.columns, b.numeric):
                        t.add_column(Text(c), justify="right" if num else "left", overflow="fold")
                    for r in b.rows:
                        t.add_row(*[Text(c.text + (f" {c.interval}" if c.interval else ""),
                                         style="bold" if c.best else "") for c in r])
                    con.print(t)
                elif isinstance(b, FigureBlock):
                    con.print(Text(f"[figure {b.asset.filename}" + (f": {b.caption}]" if b.caption else "]")))
                elif isinstance(b, ImagesBlock):
                    con.print(Text(f"[{len(b.items)} images" + (f": {b.caption}]" if b.caption else "]")))
