"""Mistake categories against accuracy: what share of each model's top-1 errors falls in each category."""

from __future__ import annotations

import matplotlib
import numpy as np
import pandas as pd

from shiftlab.errors import InputError
from shiftlab.metrics.robustness import fit_line
from shiftlab.report.figures.style import MARKERS, PALETTE, STYLE, new_figure


def category_fraction_figure(fractions: pd.DataFrame, *, title: str | None = None):
    """Fraction of each mistake category among a model's top-1 errors against its top-1 accuracy,
    one colour per category, one point per model (with a least-squares line per category)."""
    cats = [c for c in fractions.columns if c not in ("model", "top1", "errors")]
    if not len(fractions) or not cats:
        raise InputError("no models or no categories to plot")
    with matplotlib.rc_context(STYLE):
        fig = new_figure((7.0, 4.6))
        ax = fig.add_subplot()
        x = fractions["top1"].to_numpy(float)
        for j, c in enumerate(cats):
            yv = fractions[c].to_numpy(float)
            col = PALETTE[j % len(PALETTE)]
            ax.plot(100 * x, 100 * yv, MARKERS[j % len(MARKERS)], color=col, label=c, ms=6, alpha=0.9)
            if len(x) >= 3 and np.ptp(x) > 0:
                line = fit_line(x, yv, "linear")  # least squares, the same fit as the robustness lines
                xs = np.linspace(x.min(), x.max(), 2)
                ax.plot(100 * xs, 100 * line.predict(xs), "-", color=col, lw=1, alpha=0.6)
        ax.set_xlabel("top-1 accuracy (%)")
        ax.set_ylabel("share of the model's top-1 errors (%)")
        ax.set_ylim(0, 100)
        ax.set_title(title or "What kind of errors, by model accuracy", loc="left")
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig
