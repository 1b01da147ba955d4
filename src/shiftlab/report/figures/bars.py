"""Sorted horizontal bar charts (counts or fractions per category)."""

from __future__ import annotations

import warnings
from collections.abc import Mapping

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from shiftlab.errors import InputError
from shiftlab.report.figures.style import (
    PALETTE,
    STYLE,
    new_figure,
    plain_label,
    require_columns,
)


def bar_chart(
    data: pd.Series | pd.DataFrame | Mapping,
    *,
    label: str | None = None,
    value: str | None = None,
    title: str | None = None,
    xlabel: str = "count",
    max_bars: int = 30,
    sort: bool = True,
    color: str = PALETTE[0],
    value_format: str = "{:,.0f}",
    width: float = 6.5,
) -> Figure:
    """Horizontal bars, one per category, largest on top, each with its value written at its end.

    Parameters
    ----------
    data : Series, DataFrame or dict
        Category → value (a Series indexed by category, e.g. ``df["category"].value_counts()``), or a
        DataFrame with the columns ``label`` and ``value``.
    label, value : str, optional
        Columns of a DataFrame ``data``; ignored otherwise.
    title, xlabel : str
    max_bars : int, default=30
        Beyond this many categories, the smallest are summed into one last bar "(n others)".
    sort : bool, default=True
        Sort by value, largest first; False keeps the given order.
    color : str
    value_format : str, default="{:,.0f}"
        Format of the value labels ("{:.1%}" for fractions).
    width : float, default=6.5
        Inches; the height grows with the number of bars.

    Returns
    -------
    fig : matplotlib.figure.Figure
    """
    if isinstance(data, pd.DataFrame):
        if label is None or value is None:
            raise InputError("bar_chart of a DataFrame needs label= and value= column names")
        require_columns(data, [label, value])
        s = pd.Series(data[value].to_numpy(), index=data[label].astype(str).to_numpy())
    else:
        s = pd.Series(data)
        s.index = s.index.astype(str)
    s = pd.to_numeric(s, errors="coerce")
    if s.isna().any():
        warnings.warn(f"{int(s.isna().sum())} categories without a value left out of the bar chart", stacklevel=2)
        s = s.dropna()
    if sort:
        s = s.sort_values(ascending=False, kind="stable")
    if len(s) > max_bars:
        rest = s.iloc[max_bars - 1:]
        s = pd.concat([s.iloc[:max_bars - 1], pd.Series({f"({len(rest)} others)": rest.sum()})])
    with matplotlib.rc_context(STYLE):
        fig = new_figure((width, 0.9 + 0.26 * max(len(s), 2)))
        ax = fig.add_subplot()
        pos = np.arange(len(s))
        ax.barh(pos, s.to_numpy(float), color=color, height=0.7, zorder=2)
        ax.set_yticks(pos, [plain_label(t) for t in s.index])
        ax.invert_yaxis()  # first (largest) on top
        ax.grid(axis="y", visible=False)
        ax.tick_params(axis="y", length=0)
        ax.set_xlabel(plain_label(xlabel), parse_math=False)
        if title:
            ax.set_title(title, parse_math=False, loc="left")
        vmax = float(s.max()) if len(s) else 1.0
        ax.set_xlim(0, vmax * 1.15 if vmax > 0 else 1)
        for p, v in zip(pos, s.to_numpy(float)):
            ax.text(v + vmax * 0.01, p, value_format.format(v), va="center", ha="left", fontsize=8,
                    color="#333333", parse_math=False)
    return fig
