"""Reports: a self-contained HTML page (tables + PNG figures beside it) and the same tables as text.

``Report`` / ``Section`` build the page (``shiftlab.report.html``; tables in ``.tables``, markdown-ish text in
``.text``); the figures are ``shiftlab.report.figures`` (one module per figure, matplotlib without pyplot).
DataFrames in, files out.
"""

from shiftlab.report.figures import (
    accuracy_scatter,
    bar_chart,
    category_fraction_figure,
    confusion_figure,
    percent_ticks,
    robustness_plot,
    thumbnail_grid,
)
from shiftlab.report.html import Report, Section
from shiftlab.report.tables import format_table
from shiftlab.report.text import markdownish

__all__ = ["Report", "Section", "accuracy_scatter", "bar_chart", "category_fraction_figure", "confusion_figure",
           "format_table", "markdownish", "percent_ticks", "robustness_plot", "thumbnail_grid"]
