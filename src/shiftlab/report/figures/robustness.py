"""The effective-robustness plot (SPECS S1.7): a scatter on the fit's scale with the fitted line and its band."""

from __future__ import annotations

import numpy as np
import pandas as pd

from shiftlab.errors import InputError
from shiftlab.metrics.robustness import EffectiveRobustness, LineFit, interval_columns
from shiftlab.report.figures.scatter import accuracy_scatter
from shiftlab.report.figures.style import axis_limits, scale_fns

#: how far beyond the reference models' in-distribution range (a fraction of it, on the axis) a zoomed plot goes
ZOOM_MARGIN = 0.1


def zoom_rows(table: pd.DataFrame, scale: str = "logit", *, id_col: str = "id_acc",
              reference_col: str = "in_reference") -> np.ndarray:
    """Which rows a zoomed robustness plot shows: the models whose in-distribution accuracy lies within the
    reference models' range, widened by ``ZOOM_MARGIN`` of it on each side (on the ``scale`` axis). Those are the
    models a reader compares with the line; the line says nothing far outside the range it was fitted on.
    """
    fwd, _ = scale_fns(scale)
    t = np.asarray(fwd(pd.to_numeric(table[id_col], errors="coerce").to_numpy(float)), float)
    ref = t[table[reference_col].to_numpy(bool) & np.isfinite(t)]
    if ref.size == 0:
        return np.isfinite(t)
    pad = ZOOM_MARGIN * float(ref.max() - ref.min())
    return np.isfinite(t) & (t >= ref.min() - pad) & (t <= ref.max() + pad)


def _zoom_limits(table: pd.DataFrame, rows: np.ndarray, id_col: str, ood_col: str, scale: str):
    """Axis ranges around the ``rows`` of ``table``, their intervals included."""
    def values(col):
        cols = [col, *(interval_columns(table, col) or ())]
        return table.loc[rows, cols].to_numpy(float).ravel()

    return axis_limits(values(id_col), scale), axis_limits(values(ood_col), scale)


def robustness_plot(
    result: EffectiveRobustness | pd.DataFrame,
    fit: LineFit | None = None,
    band=None,
    group_col: str | None = "type",
    *,
    id_col: str = "id_acc",
    ood_col: str = "ood_acc",
    model_col: str = "model",
    xlabel: str | None = None,
    ylabel: str | None = None,
    title: str | None = None,
    annotate=None,
    zoom: bool = False,
    figsize: tuple[float, float] = (7.0, 6.0),
    **kwargs,
):
    """The effective-robustness scatter (SPECS S1.7).

    Axes in the fit's scale (logit by default) with percent ticks, the y = x line, the fitted line with
    its bootstrap band, Clopper–Pearson error bars where ``{id_col}_low/_high`` and ``{ood_col}_low/_high``
    are present, points coloured by ``group_col``. Drawn by :func:`shiftlab.report.figures.scatter.accuracy_scatter`.

    Parameters
    ----------
    result : EffectiveRobustness or DataFrame
        The output of :func:`effective_robustness` (its table and fit), or a table of accuracies with ``fit``.
    fit : LineFit, optional
        Default: the result's fit.
    band : (grid, y_low, y_high), optional
        From :func:`band_for_table` or :func:`bootstrap_band`; None draws the line alone.
    group_col : str or None, default="type"
        Colour column (ignored when absent from the table).
    id_col, ood_col, model_col : str
    xlabel, ylabel, title : str, optional
        Axis labels default to the columns the result was computed from.
    annotate : bool or list of str, optional
        Passed to ``accuracy_scatter``.
    zoom : bool, default=False
        Axes around the models of ``zoom_rows`` (those near the reference models' range) instead of all of them;
        the others fall outside the plot.
    figsize : (float, float)
    **kwargs
        Further ``accuracy_scatter`` options (``limits``, ``palette``, ``legend_loc``).

    Returns
    -------
    fig : matplotlib.figure.Figure
    """
    names = {}
    if isinstance(result, EffectiveRobustness):
        table, fit, names = result.table, fit or result.fit, {"id_col": result.id_col, "ood_col": result.ood_col}
    else:
        table = result
    if fit is None:
        raise InputError("robustness_plot needs a fit (or the output of effective_robustness)")
    x_err = interval_columns(table, id_col)
    y_err = interval_columns(table, ood_col)
    group = group_col if group_col is not None and group_col in table.columns else None
    if zoom and "limits" not in kwargs and "in_reference" in table.columns:
        kwargs["limits"] = _zoom_limits(table, zoom_rows(table, fit.scale, id_col=id_col), id_col, ood_col, fit.scale)
    return accuracy_scatter(
        table, id_col, ood_col, label=model_col, group=group, x_err=x_err, y_err=y_err,
        xlabel=xlabel if xlabel is not None else names.get("id_col", id_col),
        ylabel=ylabel if ylabel is not None else names.get("ood_col", ood_col),
        title=title, fit=fit, band=None if band is None else tuple(band), scale=fit.scale, annotate=annotate,
        figsize=figsize, **kwargs,
    )
