"""The accuracy scatter: one test set against another, one point per model, on logit axes (SPECS S1.7)."""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence

import matplotlib
import numpy as np
import pandas as pd
from matplotlib import patheffects
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.transforms import Bbox

from shiftlab.errors import InputError
from shiftlab.metrics.robustness import LineFit
from shiftlab.report.figures.style import (
    CLIP,
    MARKERS,
    PALETTE,
    STYLE,
    axis_limits,
    new_figure,
    percent_label,
    plain_label,
    require_columns,
    scale_fns,
    set_percent_axis,
)


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
            note = (f"{n_edge} point(s) with an accuracy of 0% or 100% drawn at {percent_label(CLIP)} / "
                    f"{percent_label(1 - CLIP)} ({scale} axes have no 0% or 100%)")
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
    fit: LineFit | tuple[float, float] | None = None,
    band: tuple | None = None,
    fit_label: str | None = None,
    scale: str | None = None,
    annotate: bool | Sequence[str] | None = None,
    limits: tuple[tuple[float, float], tuple[float, float]] | None = None,
    palette: Sequence[str] | Mapping | None = None,
    legend_loc: str = "best",
    warning: str | None = None,
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
    fit : LineFit or (slope, intercept), optional
        A line ``t(y) = slope · t(x) + intercept`` in the space of ``scale`` (``shiftlab.metrics.robustness``
        fits them), drawn across the x range.
    band : (x, y_low, y_high), optional
        Accuracies (fractions) of a confidence band around the line, e.g. the pointwise 2.5 / 97.5 percentiles
        of bootstrap fits evaluated at ``x`` (``bootstrap_band``).
    fit_label : str, optional
        Legend entry of the line; default ``"<scale> fit on <n> models: slope …, intercept …"`` for a LineFit,
        ``"fit: slope …, intercept …"`` for a pair.
    scale : {"logit", "probit", "linear"}, optional
        Default: the LineFit's scale, else "logit".
    annotate : bool or list of str, optional
        Which points get a text label: all (True), none (False), those whose label is listed, or by
        default all when there are at most 40 points.
    limits : ((x_lo, x_hi), (y_lo, y_hi)), optional
        Axis ranges as fractions; by default each axis spans its data (intervals included) with a
        margin, widened where needed so that the y = x line crosses the plot.
    palette : list of colours or dict group → colour, optional
    legend_loc : str, default="best"
        A matplotlib legend location; "best" looks for a free spot inside the axes but takes the least bad one
        when there is none, so ``"outside"`` (right of the axes, widening the figure) never covers a point.
    warning : str, optional
        Shown above the axes in the warning colour, for a plot that should not be read at face value (e.g. a
        line fitted on too few models).
    figsize : (float, float), default=(7, 6)
        Inches.

    Returns
    -------
    fig : matplotlib.figure.Figure

    Notes
    -----
    Rows with NaN in ``x`` or ``y`` are left out with a warning. On logit and probit axes, accuracies of
    exactly 0 or 1 (and interval ends there) are drawn at ``CLIP`` (0.0001 % / 99.9999 %, where
    the fits put them), with a warning and a note in
    the plot. Values outside [0, 1] raise ``InputError`` (percentages, most likely).
    """
    if band is not None and fit is None:
        raise InputError("a band needs its fit: pass fit= too")
    if fit is not None and not isinstance(fit, LineFit):
        if not (isinstance(fit, Sequence) and len(fit) == 2):
            raise InputError("fit must be a LineFit or a (slope, intercept) pair")
        fit = (float(fit[0]), float(fit[1]))
    if scale is None:
        scale = fit.scale if isinstance(fit, LineFit) else "logit"
    fwd, inv = scale_fns(scale)
    require_columns(df, [x, y, label, group, *(x_err or ()), *(y_err or ())])
    err_cols = [*(x_err or ()), *(y_err or ())]
    d, note = _clean_accuracies(df, [x, y], err_cols, scale)
    xs, ys = d[x].to_numpy(float), d[y].to_numpy(float)

    if limits is None:
        xlim = axis_limits(np.concatenate([xs, d[list(x_err)].to_numpy(float).ravel() if x_err else []]), scale)
        ylim = axis_limits(np.concatenate([ys, d[list(y_err)].to_numpy(float).ravel() if y_err else []]), scale)
        # widen the y range until the diagonal crosses the plot: y = x is the reference every reader looks for
        if ylim[1] < xlim[0]:
            ylim = (ylim[0], float(inv(fwd(xlim[0]) + 0.1 * (fwd(xlim[1]) - fwd(xlim[0])))))
        if ylim[0] > xlim[1]:
            ylim = (float(inv(fwd(xlim[1]) - 0.1 * (fwd(xlim[1]) - fwd(xlim[0])))), ylim[1])
    else:
        (xlim, ylim) = limits

    with matplotlib.rc_context(STYLE):
        fig = new_figure(figsize)
        ax = fig.add_subplot()
        set_percent_axis(ax.xaxis, scale, *xlim)
        set_percent_axis(ax.yaxis, scale, *ylim)
        ax.set_xlabel(plain_label(xlabel if xlabel is not None else x), parse_math=False)
        ax.set_ylabel(plain_label(ylabel if ylabel is not None else y), parse_math=False)
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
            slope, intercept = (fit.slope, fit.intercept) if isinstance(fit, LineFit) else fit
            tx = np.linspace(fwd(xlim[0]), fwd(xlim[1]), 200)
            fx, fy = inv(tx), inv(slope * tx + intercept)
            if fit_label is not None:
                flabel = fit_label
            elif isinstance(fit, LineFit):
                flabel = f"{fit.scale} fit on {fit.n} models: slope {slope:.3f}, intercept {intercept:.3f}"
            else:
                flabel = f"fit: slope {slope:.3f}, intercept {intercept:.3f}"
            ax.plot(fx, fy, color="#B2182B", lw=1.6, zorder=2, label=plain_label(flabel), gid="fit")
            line = Line2D([], [], color="#B2182B", lw=1.6)
            if band is None:
                handles.append((line, plain_label(flabel)))
            else:
                bx, blo, bhi = (np.asarray(v, float) for v in band)
                ax.fill_between(bx, np.clip(blo, CLIP, 1 - CLIP), np.clip(bhi, CLIP, 1 - CLIP), color="#B2182B",
                                alpha=0.15, lw=0, zorder=1.5, gid="fit-band")
                handles.append(((Patch(color="#B2182B", alpha=0.15, lw=0), line), plain_label(flabel)))

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
                              label=plain_label(g) if g is not None else "models")
            coll.set_gid(f"points:{g}" if g is not None else "points")
            if g is not None:
                handles.append((coll, plain_label(g)))

        where = ({"loc": "upper left", "bbox_to_anchor": (1.02, 1.0), "borderaxespad": 0.0}
                 if legend_loc == "outside" else {"loc": legend_loc, "borderaxespad": 0.6})
        leg = ax.legend(handles=[h for h, _ in handles], labels=[t for _, t in handles], handlelength=2.2, **where)
        if warning:
            # above the axes (a figure title), where it covers nothing and is read before the points
            fig.suptitle(f"warning: {plain_label(warning)}", x=0.01, ha="left", fontsize=9, color="#8a5a00",
                         wrap=True)
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
