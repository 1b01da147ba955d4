"""Report tables: a DataFrame → cells formatted for HTML and the console (``format_table``), with intervals,
per-column formats and NaN shown as a dash."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from shiftlab.errors import InputError

# ------------------------------------------------------------------------------------------------ tables

#: text cells up to this long without a space stay on one line (``Cell.word``); longer ones may wrap
WORD_MAX = 40


@dataclass
class Cell:
    """One table cell: its display ``text``, an ``interval`` (``"[lo, hi]"``) shown smaller after it, and whether it
    is numeric (right-aligned) and the column's best value (bold).
    """

    text: str
    interval: str = ""  # "[lo, hi]" shown after the value, smaller
    num: bool = False
    best: bool = False

    @property
    def word(self) -> bool:
        """A short text without spaces (a model name, an id): kept on one line, as a browser would otherwise break
        ``cnn-medium-s0`` at its hyphens to squeeze a wide table."""
        return not self.num and 0 < len(self.text) <= WORD_MAX and not any(ch.isspace() for ch in self.text)

    @property
    def long(self) -> bool:
        """A text longer than ``WORD_MAX`` without a space (``resnet50_with_gaussian_noise_…``): it may break
        anywhere, or it alone would set its column's width and push the table off the page."""
        return not self.num and len(self.text) > WORD_MAX and not any(ch.isspace() for ch in self.text)

    @property
    def classes(self) -> str:
        """The cell's CSS classes: ``num``, ``best``, ``word`` and ``long``, space-separated (empty when none)."""
        return " ".join(c for c, on in (("num", self.num), ("best", self.best), ("word", self.word),
                                        ("long", self.long)) if on)


@dataclass
class TableBlock:
    """A table as ``format_table`` formats it: column names, a numeric flag per column, rows of ``Cell``s, the
    caption, a CSS class per row (``hl`` for highlighted rows) and ``shown_note`` when ``max_rows`` cut rows off.
    """

    columns: list[str]
    numeric: list[bool]
    rows: list[list[Cell]]
    caption: str | None
    row_classes: list[str]
    shown_note: str = ""
    kind: str = "table"


def default_format(v: Any) -> str:
    """How a cell shows without a given format: None/NaN as —, booleans yes/no, integers (and whole floats)
    with thousands separators, other floats to 4 significant digits, ±inf as ∞."""
    if v is None or v is pd.NA or v is pd.NaT:
        return "—"
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, (int, np.integer)):
        return f"{int(v):,}"
    if isinstance(v, (float, np.floating)):
        if math.isnan(v):
            return "—"
        if math.isinf(v):
            return "∞" if v > 0 else "−∞"
        if float(v).is_integer() and abs(v) < 1e15:
            return f"{int(v):,}"
        return f"{v:.4g}"
    return str(v)


def _formatter(fmt) -> Callable[[Any], str]:
    if fmt is None:
        return default_format
    if callable(fmt):
        return lambda v: "—" if _isnan(v) else str(fmt(v))
    return lambda v: "—" if _isnan(v) else fmt.format(v)


def _isnan(v) -> bool:
    try:
        return v is None or v is pd.NA or (isinstance(v, (float, np.floating)) and math.isnan(v))
    except TypeError:
        return False


def format_table(
    df: pd.DataFrame,
    *,
    caption: str | None = None,
    formats: Mapping[str, str | Callable] | None = None,
    intervals: Mapping[str, tuple[str, str]] | None = None,
    highlight: Mapping[str, str] | Sequence[bool] | None = None,
    index: bool = False,
    max_rows: int | None = None,
) -> TableBlock:
    """Cells as display strings: the one formatting step that both the HTML and the text output use.

    See ``Section.table`` for the parameters.
    """
    if not isinstance(df, pd.DataFrame):
        if isinstance(df, pd.Series):
            df = df.to_frame()
        else:
            raise InputError(f"table needs a pandas DataFrame, got {type(df).__name__}")
    if index:
        df = df.reset_index()
    formats = dict(formats or {})
    intervals = dict(intervals or {})
    missing = [c for c in [*formats, *intervals, *(c for lh in intervals.values() for c in lh)]
               if c not in df.columns]
    if isinstance(highlight, Mapping):
        missing += [c for c in highlight if c not in df.columns]
        bad = {v for v in highlight.values() if v not in ("max", "min")}
        if bad:
            raise InputError(f"highlight values must be 'max' or 'min', got {', '.join(map(repr, bad))}")
    if missing:
        raise InputError(f"column(s) {', '.join(map(repr, dict.fromkeys(missing)))} not in the table; it has "
                         f"{', '.join(map(str, df.columns))}")
    hidden = {c for lh in intervals.values() for c in lh}
    cols = [c for c in df.columns if c not in hidden]
    n_total = len(df)
    row_hl = None
    if highlight is not None and not isinstance(highlight, Mapping):
        row_hl = np.asarray(highlight, bool)
        if row_hl.shape != (n_total,):
            raise InputError(f"highlight has {row_hl.size} flags for {n_total} rows; give one per row")
    best: dict[str, set] = {}
    if isinstance(highlight, Mapping):
        for c, how in highlight.items():
            v = pd.to_numeric(df[c], errors="coerce")
            if v.notna().any():
                target = v.max() if how == "max" else v.min()
                best[c] = set(np.flatnonzero((v == target).to_numpy()))
    shown = df if max_rows is None else df.iloc[:max_rows]
    fmts = {c: _formatter(formats.get(c)) for c in df.columns}
    for c, (lo, hi) in intervals.items():  # interval ends use the value's format
        fmts[lo] = fmts[hi] = fmts[c]
    numeric = [pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c]) for c in cols]
    rows = []
    for i, (_, r) in enumerate(shown.iterrows()):
        cells = []
        for c, num in zip(cols, numeric):
            cell = Cell(fmts[c](r[c]), num=num, best=i in best.get(c, ()))
            if c in intervals:
                lo, hi = (fmts[k](r[k]) for k in intervals[c])
                if lo != "—" or hi != "—":
                    if cell.text.endswith("%") and lo.endswith("%") and hi.endswith("%"):
                        lo, hi = lo[:-1], hi[:-1]
                    cell.interval = f"[{lo}, {hi}]"
            cells.append(cell)
        rows.append(cells)
    note = f"first {len(shown):,} of {n_total:,} rows" if len(shown) < n_total else ""
    return TableBlock(columns=[str(c) for c in cols], numeric=numeric, rows=rows, caption=caption,
                      row_classes=["hl" if row_hl is not None and row_hl[i] else "" for i in range(len(rows))],
                      shown_note=note)
