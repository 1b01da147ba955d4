"""What every figure shares: colours, markers, the matplotlib style, percent axes on accuracy scales."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter, NullLocator

from shiftlab.errors import InputError
from shiftlab.metrics.scales import EPS, check_scale, inverse_transform, transform

#: accuracies of exactly 0 or 1 have no logit; they are drawn at CLIP or 1 − CLIP, where the fits of
#: ``shiftlab.metrics.robustness`` put them too (one constant: ``shiftlab.metrics.scales.EPS``)
CLIP = EPS
#: Okabe–Ito colours (distinguishable with the common colour-vision deficiencies), then tab10's rest
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#000000",
           "#8c564b", "#7f7f7f", "#bcbd22", "#17becf", "#F0E442"]
#: marker shapes cycle with the colours so that groups stay apart in greyscale prints
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "<", ">", "h", "*", "p"]

STYLE = {
    "font.size": 9,
    "axes.titlesize": 11,
    "axes.titleweight": "bold",
    "axes.labelsize": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.edgecolor": "#555555",
    "axes.grid": True,
    "grid.color": "#e3e3e3",
    "grid.linewidth": 0.7,
    "xtick.color": "#333333",
    "ytick.color": "#333333",
    "xtick.labelsize": 8.5,
    "ytick.labelsize": 8.5,
    "legend.fontsize": 8.5,
    "legend.frameon": True,
    "legend.framealpha": 0.92,
    "legend.edgecolor": "#dddddd",
    "figure.facecolor": "white",
}

# tick candidates in percent, coarsest first: the coarsest level that puts enough ticks in range wins
_TICK_LEVELS = [
    [50],
    [1, 10, 90, 99],
    [0.1, 5, 20, 30, 40, 60, 70, 80, 95, 99.9],
    [0.01, 0.5, 2, 15, 25, 35, 45, 55, 65, 75, 85, 98, 99.5, 99.99],
    [0.05, 0.2, *range(1, 100), 99.8, 99.95],
    [x / 2 for x in range(1, 200)],
    [x / 10 for x in range(1, 1000)],
]


def scale_fns(scale: str) -> tuple[Callable, Callable]:
    """(forward, inverse) of an accuracy scale, as ``shiftlab.metrics.scales`` defines them (one clip, ``EPS``)."""
    check_scale(scale)
    return (lambda a: transform(a, scale)), (lambda t: inverse_transform(t, scale))


def percent_label(a: float) -> str:
    """An accuracy (a fraction) as percent text: 0.125 → ``"12.5%"`` (6 significant digits at most)."""
    return f"{round(100 * a, 6):g}%"


def percent_ticks(lo: float, hi: float, scale: str = "logit", max_ticks: int = 9, min_ticks: int = 4) -> np.ndarray:
    """Round percentages to put as ticks on an accuracy axis from ``lo`` to ``hi``.

    Takes the coarsest set of round values (50 %; then 1, 10, 90, 99 %; then multiples of 10 %, ...) that
    puts at least ``min_ticks`` ticks inside the range, then drops ticks that would sit closer than
    1/``max_ticks`` of the axis to a rounder one (distance measured on the axis, i.e. in ``scale`` space).

    Parameters
    ----------
    lo, hi : float
        Axis range, as fractions in (0, 1).
    scale : {"logit", "probit", "linear"}, default="logit"
    max_ticks, min_ticks : int
        Bounds on the number of ticks (``min_ticks`` is a wish: a range narrower than 0.1 % may get fewer).

    Returns
    -------
    ticks : ndarray of shape (n_ticks,)
        Sorted tick positions as fractions.
    """
    fwd, _ = scale_fns(scale)
    lo, hi = min(lo, hi), max(lo, hi)
    chosen: list[tuple[int, float]] = []
    for rank in range(len(_TICK_LEVELS)):
        chosen = [(r, p / 100) for r, level in enumerate(_TICK_LEVELS[:rank + 1]) for p in level
                  if lo - 1e-12 <= p / 100 <= hi + 1e-12]
        if len(chosen) >= min_ticks:
            break
    span = float(fwd(hi) - fwd(lo))
    min_sep = span / (max_ticks + 1)
    mid = (float(fwd(lo)) + float(fwd(hi))) / 2
    keep: list[float] = []
    # roundest first (a rounder value keeps its place), then from the middle out (symmetric choices)
    for _, a in sorted(chosen, key=lambda ra: (ra[0], round(abs(float(fwd(ra[1])) - mid), 9), ra[1])):
        t = float(fwd(a))
        if all(abs(t - float(fwd(b))) >= min_sep for b in keep):
            keep.append(a)
    return np.array(sorted(set(keep)))


def set_percent_axis(axis, scale: str, lo: float, hi: float) -> None:
    """Scale, limits and percent ticks of one axis (``ax.xaxis`` or ``ax.yaxis``)."""
    ax = axis.axes
    setter = ax.set_xscale if axis is ax.xaxis else ax.set_yscale
    limiter = ax.set_xlim if axis is ax.xaxis else ax.set_ylim
    if scale == "logit":
        setter("logit", nonpositive="clip")
    elif scale == "probit":
        setter("function", functions=scale_fns("probit"))
    else:
        setter("linear")
    limiter(lo, hi)
    axis.set_major_locator(FixedLocator(percent_ticks(lo, hi, scale)))
    axis.set_major_formatter(FuncFormatter(lambda a, _pos: percent_label(a)))
    axis.set_minor_locator(NullLocator())
    axis.set_minor_formatter(NullFormatter())


def axis_limits(values: np.ndarray, scale: str, pad: float = 0.07) -> tuple[float, float]:
    """Axis range (fractions) around ``values`` with a margin of ``pad`` of the span on the axis."""
    fwd, inv = scale_fns(scale)
    t = fwd(values[np.isfinite(values)])
    lo, hi = float(t.min()), float(t.max())
    min_span = 0.02 if scale == "linear" else 0.3  # one point, or models that all agree
    if hi - lo < min_span:
        mid = (hi + lo) / 2
        lo, hi = mid - min_span / 2, mid + min_span / 2
    m = pad * (hi - lo)
    lo_a, hi_a = float(inv(lo - m)), float(inv(hi + m))
    if scale == "linear":
        return max(lo_a, -0.02), min(hi_a, 1.02)
    return max(lo_a, CLIP / 2), min(hi_a, 1 - CLIP / 2)


# ------------------------------------------------------------------------------------------------ helpers

def plain_label(s) -> str:
    """A label that matplotlib shows as typed (``$`` would otherwise start mathtext)."""
    return str(s).replace("$", r"\$")


def new_figure(figsize) -> Figure:
    """A matplotlib Figure without pyplot: constrained layout, an Agg canvas, ``figsize`` (width, height) in inches."""
    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def require_columns(df: pd.DataFrame, cols: Sequence[str]) -> None:
    """Raise ``InputError`` naming the columns of ``cols`` that ``df`` lacks (None entries are skipped)."""
    missing = [c for c in cols if c is not None and c not in df.columns]
    if missing:
        raise InputError(f"column(s) {', '.join(map(repr, missing))} not in the table; it has "
                         f"{', '.join(map(str, df.columns))}")
