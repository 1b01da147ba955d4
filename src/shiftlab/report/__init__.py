"""Reports: a self-contained HTML page (tables + PNG figures beside it) and the same tables as text.

``Report`` / ``Section`` build the page (``shiftlab.report.html``); ``accuracy_scatter``, ``bar_chart`` and
``thumbnail_grid`` make the figures (``shiftlab.report.plots``, matplotlib without pyplot).
"""

from shiftlab.report.html import Report, Section, format_table, markdownish
from shiftlab.report.plots import LinearFit, accuracy_scatter, bar_chart, percent_ticks, thumbnail_grid

__all__ = ["LinearFit", "Report", "Section", "accuracy_scatter", "bar_chart", "format_table", "markdownish",
           "percent_ticks", "thumbnail_grid"]
