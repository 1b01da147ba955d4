"""Figures for reports: accuracy scatters on logit axes, sorted bar charts, thumbnail grids.

Every function returns a ``matplotlib.figure.Figure`` built without pyplot (no global figure registry, no
GUI backend, nothing to ``show``): hand it to ``Section.figure`` or call ``fig.savefig`` yourself.
Accuracies are fractions in [0, 1] throughout; axes show them in percent.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib import patheffects
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter, NullLocator
from matplotlib.transforms import Bbox
from scipy.stats import norm

from shiftlab.errors import InputError

__all__ = ["CLIP", "PALETTE", "LinearFit", "accuracy_scatter", "bar_chart", "percent_ticks", "thumbnail_grid"]

#: accuracies of exactly 0 or 1 have no logit; they are drawn at CLIP or 1 − CLIP
CLIP = 1e-4
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


# ------------------------------------------------------------------------------------------------ scales

def _logit(a):
    a = np.asarray(a, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log(a / (1 - a))


def _expit(t):
    return 1 / (1 + np.exp(-np.asarray(t, dtype=float)))


def _probit(a):
    return norm.ppf(np.clip(np.asarray(a, dtype=float), 1e-12, 1 - 1e-12))


_SCALES: dict[str, tuple[Callable, Callable]] = {
    "logit": (_logit, _expit),
    "probit": (_probit, norm.cdf),
    "linear": (lambda a: np.asarray(a, dtype=float), lambda t: np.asarray(t, dtype=float)),
}


def _scale_fns(scale: str) -> tuple[Callable, Callable]:
    if scale not in _SCALES:
        raise InputError(f"unknown scale {scale!r}; use one of {', '.join(_SCALES)}")
    return _SCALES[scale]


def _percent_label(a: float) -> str:
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
    fwd, _ = _scale_fns(scale)
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


def _set_percent_axis(axis, scale: str, lo: float, hi: float) -> None:
    """Scale, limits and percent ticks of one axis (``ax.xaxis`` or ``ax.yaxis``)."""
    ax = axis.axes
    setter = ax.set_xscale if axis is ax.xaxis else ax.set_yscale
    limiter = ax.set_xlim if axis is ax.xaxis else ax.set_ylim
    if scale == "logit":
        setter("logit", nonpositive="clip")
    elif scale == "probit":
        setter("function", functions=(_probit, norm.cdf))
    else:
        setter("linear")
    limiter(lo, hi)
    axis.set_major_locator(FixedLocator(percent_ticks(lo, hi, scale)))
    axis.set_major_formatter(FuncFormatter(lambda a, _pos: _percent_label(a)))
    axis.set_minor_locator(NullLocator())
    axis.set_minor_formatter(NullFormatter())


def _limits(values: np.ndarray, scale: str, pad: float = 0.07) -> tuple[float, float]:
    """Axis range (fractions) around ``values`` with a margin of ``pad`` of the span on the axis."""
    fwd, inv = _scale_fns(scale)
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

def _plain(s) -> str:
    """A label that matplotlib shows as typed (``$`` would otherwise start mathtext)."""
    return str(s).replace("$", r"\$")


def _new_figure(figsize) -> Figure:
    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _require(df: pd.DataFrame, cols: Sequence[str]) -> None:
    missing = [c for c in cols if c is not None and c not in df.columns]
    if missing:
        raise InputError(f"column(s) {', '.join(map(repr, missing))} not in the table; it has "
                         f"{', '.join(map(str, df.columns))}")


@dataclass(frozen=True)
class LinearFit:
    """A line in the transformed space of an accuracy scatter, ``t(y) = slope · t(x) + intercept``.

    Parameters
    ----------
    slope, intercept : float
        In the space of the plot's ``scale`` (logit by default), as ``metrics.robustness`` fits them.
    band : tuple of three array-likes, optional
        ``(x, y_low, y_high)``: accuracies (fractions) of a confidence band around the line, e.g. the
        pointwise 2.5 / 97.5 percentiles of bootstrap fits evaluated at ``x``.
    label : str, optional
        Legend entry; default ``"fit: slope …, intercept …"``.
    """

    slope: float
    intercept: float
    band: tuple | None = None
    label: str | None = None

    @classmethod
    def coerce(cls, fit) -> LinearFit:
        if isinstance(fit, LinearFit):
            return fit
        if isinstance(fit, Mapping):
            return cls(**fit)
        if isinstance(fit, Sequence) and len(fit) == 2:
            return cls(float(fit[0]), float(fit[1]))
        raise InputError("fit must be a LinearFit, a dict(slope=, intercept=, band=, label=) or (slope, intercept)")


def _clean_accuracies(df: pd.DataFrame, cols: list[str], err_cols: list[str], scale: str) -> tuple[pd.DataFrame, str]:
    """Drop rows with NaN in ``cols`` (warning), reject values outside [0, 1], clip 0 / 1 on logit axes."""
    df = df.copy()
    for c in cols + err_cols:
        df[c] = pd.to_numeric(df[c], errors="coerce").astype(float)
    bad = df[cols].isna().any(axis=1)
    if bad.any():
        warnings.warn(f"{int(bad.sum())} row(s) without an accuracy in {', '.join(cols)} left out of the plot",
                      stacklevel=3)
        df = df[~bad]
    if df.empty:
        raise InputError(f"no row has accuracies in {', '.join(cols)}; nothing to plot")
    vals = df[cols + err_cols].to_numpy(float)
    if np.nanmin(vals) < 0 or np.nanmax(vals) > 1:
        raise InputError(f"accuracies in {', '.join(cols + err_cols)} must be fractions in [0, 1] "
                         f"(found {np.nanmin(vals):g} to {np.nanmax(vals):g}); divide percentages by 100")
    note = ""
    if scale != "linear":
        n_edge = int(((df[cols] <= CLIP) | (df[cols] >= 1 - CLIP)).any(axis=1).sum())
        if n_edge:
            note = (f"{n_edge} point(s) with an accuracy of 0% or 100% drawn at {_percent_label(CLIP)} / "
                    f"{_percent_label(1 - CLIP)} ({scale} axes have no 0% or 100%)")
            warnings.warn(note, stacklevel=3)
        df[cols + err_cols] = df[cols + err_cols].clip(CLIP, 1 - CLIP)
    return df, note


def _groups(df: pd.DataFrame, group: str | None) -> list:
    if group is None:
        return [None]
    s = df[group]
    if isinstance(s.dtype, pd.CategoricalDtype):
        return [c for c in s.cat.categories if (s == c).any()]
    return list(pd.unique(s.astype(object).where(s.notna(), "(none)")))


def _colour_map(groups: list, palette) -> dict:
    if isinstance(palette, Mapping):
        return {g: palette.get(g, PALETTE[i % len(PALETTE)]) for i, g in enumerate(groups)}
    pal = list(palette) if palette is not None else PALETTE
    return {g: pal[i % len(pal)] for i, g in enumerate(groups)}


# candidate label positions around a point: (dx, dy) in units of the gap, ha, va; the first fitting one wins
_SPOTS = [(1, 0.15, "left", "bottom"), (1, -0.15, "left", "top"), (-1, 0.15, "right", "bottom"),
          (-1, -0.15, "right", "top"), (0, 1, "center", "bottom"), (0, -1, "center", "top"),
          (1, 0, "left", "center"), (-1, 0, "right", "center")]


def _overlap(a: Bbox, b: Bbox) -> float:
    w = min(a.x1, b.x1) - max(a.x0, b.x0)
    h = min(a.y1, b.y1) - max(a.y0, b.y0)
    return w * h if w > 0 and h > 0 else 0.0


def _label_points(ax, xs, ys, texts, *, fontsize: float, marker_pt: float, avoid: list[Bbox]) -> list:
    """Label each point beside itself, trying positions around it (then farther out, with a leader
    line) and taking the one that overlaps other labels, points and the legend least."""
    fig = ax.figure
    fig.canvas.draw()  # settles the constrained layout, so display coordinates are final
    renderer = fig.canvas.get_renderer()
    px_per_pt = fig.dpi / 72
    pts = ax.transData.transform(np.column_stack([xs, ys]))
    r = marker_pt / 2 * px_per_pt + 1
    point_boxes = [Bbox.from_extents(x - r, y - r, x + r, y + r) for x, y in pts]
    axbox = ax.get_window_extent(renderer)
    placed: list[Bbox] = []
    out = []
    # dense points first: they have the fewest free spots
    dens = [sum(math.hypot(*(p - q)) < 40 * px_per_pt for q in pts) for p in pts]
    for i in sorted(range(len(pts)), key=lambda i: (-dens[i], i)):
        probe = ax.text(0, 0, texts[i], fontsize=fontsize, parse_math=False)
        bb = probe.get_window_extent(renderer)
        probe.remove()
        w, h = bb.width, bb.height
        best = None
        for ring, gap_pt in enumerate((marker_pt / 2 + 2, marker_pt / 2 + 12)):
            gap = gap_pt * px_per_pt
            for k, (dx, dy, ha, va) in enumerate(_SPOTS):
                ox, oy = pts[i][0] + dx * gap, pts[i][1] + dy * gap
                x0 = {"left": ox, "right": ox - w, "center": ox - w / 2}[ha]
                y0 = {"bottom": oy, "top": oy - h, "center": oy - h / 2}[va]
                box = Bbox.from_bounds(x0, y0, w, h)
                cost = sum(_overlap(box, b) for b in placed) * 3
                cost += sum(_overlap(box, b) for j, b in enumerate(point_boxes) if j != i) * 2
                cost += sum(_overlap(box, b) for b in avoid) * 2
                cost += (w * h - _overlap(box, axbox)) * 10  # outside the axes: clipped away
                cost += ring * 0.6 * w * h / 4 + k * 0.01
                if best is None or cost < best[0]:
                    best = (cost, box, dx * gap / px_per_pt, dy * gap / px_per_pt, ha, va, ring)
            if best[0] < 1:  # a free spot near the point: no need to go farther out
                break
        _, box, dx, dy, ha, va, ring = best
        placed.append(box)
        arrow = {"arrowstyle": "-", "color": "#999999", "lw": 0.5, "shrinkA": 0, "shrinkB": marker_pt / 2} \
            if ring else None
        ann = ax.annotate(texts[i], xy=(xs[i], ys[i]), xytext=(dx, dy), textcoords="offset points", ha=ha,
                          va=va, fontsize=fontsize, color="#333333", parse_math=False, arrowprops=arrow,
                          annotation_clip=True, zorder=4,
                          path_effects=[patheffects.withStroke(linewidth=2.2, foreground="white")])
        ann.set_in_layout(False)
        out.append(ann)
    return out


# ------------------------------------------------------------------------------------------------ figures

def accuracy_scatter(
    df: pd.DataFrame,
    x: str = "top1_id",
    y: str = "top1_ood",
    *,
    label: str | None = "model",
    group: str | None = None,
    x_err: tuple[str, str] | None = None,
    y_err: tuple[str, str] | None = None,
    xlabel: str | None = None,
    ylabel: str | None = None,
    title: str | None = None,
    fit: LinearFit | Mapping | tuple | None = None,
    scale: str = "logit",
    annotate: bool | Sequence[str] | None = None,
    limits: tuple[tuple[float, float], tuple[float, float]] | None = None,
    palette: Sequence[str] | Mapping | None = None,
    legend_loc: str = "best",
    figsize: tuple[float, float] = (7.0, 6.0),
) -> Figure:
    """Accuracy on one test set against another, one point per model, on logit axes.

    The effective-robustness plot (Taori et al. 2020; SPECS S1.7): both axes logit-scaled,
    t(a) = ln(a / (1 − a)), ticks labelled in percent, the dashed y = x line, points coloured by
    ``group``, each labelled with its model name, optional error bars and an optional fitted line.

    Parameters
    ----------
    df : DataFrame
        One row per model. Accuracies are fractions in [0, 1].
    x, y : str, default="top1_id", "top1_ood"
        Columns of the in-distribution (x) and shifted (y) accuracies.
    label : str or None, default="model"
        Column with the point labels (model names); None for no labels.
    group : str, optional
        Column that colours the points (model family or training type); one legend entry per group,
        in order of first appearance (or category order).
    x_err, y_err : (str, str), optional
        Columns ``(low, high)`` of an interval around x / y (e.g. ``("top1_low", "top1_high")``, the
        95 % Clopper–Pearson interval of ``evaluate``), drawn as error bars.
    xlabel, ylabel, title : str, optional
        Axis labels default to the column names.
    fit : LinearFit, dict or (slope, intercept), optional
        A line ``t(y) = slope · t(x) + intercept`` in the space of ``scale``, with an optional band,
        drawn across the x range.
    scale : {"logit", "probit", "linear"}, default="logit"
    annotate : bool or list of str, optional
        Which points get a text label: all (True), none (False), those whose label is listed, or by
        default all when there are at most 40 points.
    limits : ((x_lo, x_hi), (y_lo, y_hi)), optional
        Axis ranges as fractions; by default each axis spans its data (intervals included) with a
        margin, widened where needed so that the y = x line crosses the plot.
    palette : list of colours or dict group → colour, optional
    legend_loc : str, default="best"
        A matplotlib legend location; "best" keeps it off the points and lines.
    figsize : (float, float), default=(7, 6)
        Inches.

    Returns
    -------
    fig : matplotlib.figure.Figure

    Notes
    -----
    Rows with NaN in ``x`` or ``y`` are left out with a warning. On logit and probit axes, accuracies of
    exactly 0 or 1 (and interval ends there) are drawn at 0.01 % / 99.99 %, with a warning and a note in
    the plot. Values outside [0, 1] raise ``InputError`` (percentages, most likely).
    """
    fwd, inv = _scale_fns(scale)
    _require(df, [x, y, label, group, *(x_err or ()), *(y_err or ())])
    err_cols = [*(x_err or ()), *(y_err or ())]
    d, note = _clean_accuracies(df, [x, y], err_cols, scale)
    xs, ys = d[x].to_numpy(float), d[y].to_numpy(float)

    if limits is None:
        xlim = _limits(np.concatenate([xs, d[list(x_err)].to_numpy(float).ravel() if x_err else []]), scale)
        ylim = _limits(np.concatenate([ys, d[list(y_err)].to_numpy(float).ravel() if y_err else []]), scale)
        # widen the y range until the diagonal crosses the plot: y = x is the reference every reader looks for
        if ylim[1] < xlim[0]:
            ylim = (ylim[0], float(inv(fwd(xlim[0]) + 0.1 * (fwd(xlim[1]) - fwd(xlim[0])))))
        if ylim[0] > xlim[1]:
            ylim = (float(inv(fwd(xlim[1]) - 0.1 * (fwd(xlim[1]) - fwd(xlim[0])))), ylim[1])
    else:
        (xlim, ylim) = limits

    with matplotlib.rc_context(STYLE):
        fig = _new_figure(figsize)
        ax = fig.add_subplot()
        _set_percent_axis(ax.xaxis, scale, *xlim)
        _set_percent_axis(ax.yaxis, scale, *ylim)
        ax.set_xlabel(_plain(xlabel if xlabel is not None else x), parse_math=False)
        ax.set_ylabel(_plain(ylabel if ylabel is not None else y), parse_math=False)
        if title:
            ax.set_title(title, parse_math=False, loc="left")

        # y = x over the union of both ranges, so it spans whatever part of the plot it crosses
        lo, hi = min(xlim[0], ylim[0]), max(xlim[1], ylim[1])
        # many vertices, not two: legend_loc="best" only sees vertices, and must keep off this line
        diag = inv(np.linspace(fwd(lo), fwd(hi), 100))
        ax.plot(diag, diag, ls="--", lw=1.1, color="#777777", label="y = x", zorder=1, gid="y=x")
        ax.set_xlim(*xlim)
        ax.set_ylim(*ylim)
        handles = [(Line2D([], [], ls="--", lw=1.1, color="#777777"), "y = x")]

        if fit is not None:
            f = LinearFit.coerce(fit)
            tx = np.linspace(fwd(xlim[0]), fwd(xlim[1]), 200)
            fx, fy = inv(tx), inv(f.slope * tx + f.intercept)
            flabel = f.label or f"fit: slope {f.slope:.3f}, intercept {f.intercept:.3f}"
            ax.plot(fx, fy, color="#B2182B", lw=1.6, zorder=2, label=_plain(flabel), gid="fit")
            line = Line2D([], [], color="#B2182B", lw=1.6)
            if f.band is None:
                handles.append((line, _plain(flabel)))
            else:
                bx, blo, bhi = (np.asarray(v, float) for v in f.band)
                ax.fill_between(bx, np.clip(blo, CLIP, 1 - CLIP), np.clip(bhi, CLIP, 1 - CLIP), color="#B2182B",
                                alpha=0.15, lw=0, zorder=1.5, gid="fit-band")
                handles.append(((Patch(color="#B2182B", alpha=0.15, lw=0), line), _plain(flabel)))

        groups = _groups(d, group)
        colours = _colour_map(groups, palette)
        gkey = d[group].astype(object).where(d[group].notna(), "(none)") if group else None
        marker_pt = 6.5
        for gi, g in enumerate(groups):
            m = np.ones(len(d), bool) if g is None else (gkey == g).to_numpy()
            c = colours[g]
            if x_err or y_err:
                xe = np.abs(np.vstack([xs[m] - d[x_err[0]].to_numpy(float)[m],
                                       d[x_err[1]].to_numpy(float)[m] - xs[m]])) if x_err else None
                ye = np.abs(np.vstack([ys[m] - d[y_err[0]].to_numpy(float)[m],
                                       d[y_err[1]].to_numpy(float)[m] - ys[m]])) if y_err else None
                ax.errorbar(xs[m], ys[m], xerr=None if xe is None else np.nan_to_num(xe),
                            yerr=None if ye is None else np.nan_to_num(ye), fmt="none", ecolor=c, elinewidth=0.9,
                            alpha=0.55, capsize=0, zorder=2.5)
            coll = ax.scatter(xs[m], ys[m], s=marker_pt ** 2, color=c, marker=MARKERS[gi % len(MARKERS)],
                              edgecolors="white", linewidths=0.6, zorder=3,
                              label=_plain(g) if g is not None else "models")
            coll.set_gid(f"points:{g}" if g is not None else "points")
            if g is not None:
                handles.append((coll, _plain(g)))

        leg = ax.legend(handles=[h for h, _ in handles], labels=[t for _, t in handles], loc=legend_loc,
                        handlelength=2.2, borderaxespad=0.6)
        if note:
            ax.text(0.99, 0.01, note, transform=ax.transAxes, ha="right", va="bottom", fontsize=7,
                    color="#8a5a00", parse_math=False, wrap=True, zorder=5)

        if label is not None:
            names = d[label].astype(str).tolist()
            if annotate is None:
                keep = np.full(len(d), len(d) <= 40)
            elif isinstance(annotate, bool):
                keep = np.full(len(d), annotate)
            else:
                wanted = {str(a) for a in annotate}
                keep = np.array([n in wanted for n in names])
            if keep.any():
                fig.canvas.draw()
                avoid = [leg.get_window_extent(fig.canvas.get_renderer())]
                idx = np.flatnonzero(keep)
                _label_points(ax, xs[idx], ys[idx], [names[i] for i in idx], fontsize=7,
                              marker_pt=marker_pt, avoid=avoid)
    return fig


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
        _require(data, [label, value])
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
        fig = _new_figure((width, 0.9 + 0.26 * max(len(s), 2)))
        ax = fig.add_subplot()
        pos = np.arange(len(s))
        ax.barh(pos, s.to_numpy(float), color=color, height=0.7, zorder=2)
        ax.set_yticks(pos, [_plain(t) for t in s.index])
        ax.invert_yaxis()  # first (largest) on top
        ax.grid(axis="y", visible=False)
        ax.tick_params(axis="y", length=0)
        ax.set_xlabel(_plain(xlabel), parse_math=False)
        if title:
            ax.set_title(title, parse_math=False, loc="left")
        vmax = float(s.max()) if len(s) else 1.0
        ax.set_xlim(0, vmax * 1.15 if vmax > 0 else 1)
        for p, v in zip(pos, s.to_numpy(float)):
            ax.text(v + vmax * 0.01, p, value_format.format(v), va="center", ha="left", fontsize=8,
                    color="#333333", parse_math=False)
    return fig


def _as_array(im) -> np.ndarray:
    from PIL import Image

    if isinstance(im, (str, Path)):
        with Image.open(im) as f:
            f.load()
            return np.asarray(f.convert("RGB") if f.mode not in ("L", "RGB") else f)
    if isinstance(im, Image.Image):
        return np.asarray(im.convert("RGB") if im.mode not in ("L", "RGB") else im)
    a = np.asarray(im)
    if a.ndim == 3 and a.shape[0] in (1, 3) and a.shape[-1] not in (1, 3):  # CHW tensor layout
        a = np.moveaxis(a, 0, -1)
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    return a


def thumbnail_grid(
    images: Sequence,
    captions: Sequence[str] | None = None,
    ncols: int = 8,
    *,
    title: str | None = None,
    cell: float = 1.3,
    cmap: str = "gray",
    caption_colors: Sequence[str] | None = None,
) -> Figure:
    """A grid of small images with a caption under each.

    Parameters
    ----------
    images : sequence of paths, PIL images or arrays
        Arrays are (H, W) grey, (H, W, 3) RGB or (C, H, W); uint8 in [0, 255] or floats in [0, 1].
    captions : sequence of str, optional
        One per image (e.g. "label 3 → pred 8").
    ncols : int, default=8
    title : str, optional
    cell : float, default=1.3
        Inches per image.
    cmap : str, default="gray"
        For grey images; small images are shown with nearest-neighbour pixels, never smoothed.
    caption_colors : sequence of str, optional
        One colour per caption (e.g. red for a wrong prediction).

    Returns
    -------
    fig : matplotlib.figure.Figure
    """
    images = list(images)
    if not images:
        raise InputError("thumbnail_grid needs at least one image")
    if captions is not None and len(captions) != len(images):
        raise InputError(f"{len(captions)} captions for {len(images)} images; give one caption per image")
    ncols = max(1, min(ncols, len(images)))
    nrows = math.ceil(len(images) / ncols)
    cap_h = 0.28 if captions is not None else 0.05
    with matplotlib.rc_context({**STYLE, "axes.grid": False}):
        fig = _new_figure((ncols * cell, nrows * (cell + cap_h) + (0.35 if title else 0)))
        fig.get_layout_engine().set(w_pad=0.02, h_pad=0.02, wspace=0.02, hspace=0.02)
        axes = fig.subplots(nrows, ncols, squeeze=False)
        for i, ax in enumerate(axes.flat):
            ax.set_axis_off()
            if i >= len(images):
                continue
            a = _as_array(images[i])
            grey = a.ndim == 2
            vmax = 1.0 if a.dtype.kind == "f" and a.max(initial=0) <= 1 else 255
            ax.imshow(a, cmap=cmap if grey else None, vmin=0 if grey else None, vmax=vmax if grey else None,
                      interpolation="nearest" if max(a.shape[:2]) < 64 else "antialiased")
            if captions is not None:
                col = caption_colors[i] if caption_colors is not None else "#333333"
                ax.text(0.5, -0.03, str(captions[i]), transform=ax.transAxes, ha="center", va="top",
                        fontsize=7.5, color=col, parse_math=False)
        if title:
            fig.suptitle(title, fontsize=11, fontweight="bold", x=0.01, ha="left")
    return fig
