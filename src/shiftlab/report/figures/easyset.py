"""The easy set's figure (SPECS S5): classes per removal reason, a sorted bar chart."""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure

from shiftlab.report.figures.bars import bar_chart
from shiftlab.report.figures.style import require_columns


def reasons_chart(reasons: pd.DataFrame, *, column: str = "removal_classes",
                  title: str = "classes per removal reason") -> Figure:
    """``reasons``: ``reason`` and ``column`` (``stats.reason_counts``: ``removal_classes`` or
    ``intervention_classes``); reasons no class has are left out, the largest on top."""
    require_columns(reasons, ["reason", column])
    nonzero = reasons[reasons[column] > 0]
    return bar_chart(pd.Series(list(nonzero[column]), index=list(nonzero["reason"])), title=title, xlabel="classes")
