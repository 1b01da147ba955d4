"""The most frequent class confusions of a set of models, as bars (``shiftlab.analyze.mistakes.confusions``)."""

from __future__ import annotations

import pandas as pd

from shiftlab.errors import InputError
from shiftlab.report.figures.bars import bar_chart


def confusion_figure(pairs: pd.DataFrame, top: int = 15, *, title: str | None = None):
    """The ``top`` most frequent confusion pairs as horizontal bars (``bar_chart``)."""
    if len(pairs) == 0:
        raise InputError("no confusions to plot (the models make no top-1 errors here)")
    head = pairs.head(top)
    labels = [f"{a} ↔ {b}" for a, b in zip(head.a_name, head.b_name)]
    return bar_chart(pd.Series(head["count"].to_numpy(), index=labels), title=title or "Most frequent confusions",
                     xlabel="top-1 errors (all models)", sort=False, max_bars=top)
