"""Figures for reports, one module per figure; every function takes DataFrames and returns a matplotlib Figure.

Figures are built without pyplot (no global figure registry, no GUI backend, nothing to ``show``): hand one to
``Section.figure`` or call ``fig.savefig`` yourself. Accuracies are fractions in [0, 1]; axes show percent.

- ``scatter.accuracy_scatter``: one test set against another, on logit axes, with an optional fitted line;
- ``robustness.robustness_plot``: the effective-robustness plot of an ``effective_robustness`` result;
- ``bars.bar_chart``, ``thumbnails.thumbnail_grid``;
- ``confusions.confusion_figure``, ``categories.category_fraction_figure``: the mistakes study's figures;
- ``style``: colours, markers, the style and the percent axes they share.
"""

from shiftlab.report.figures.bars import bar_chart
from shiftlab.report.figures.categories import category_fraction_figure
from shiftlab.report.figures.confusions import confusion_figure
from shiftlab.report.figures.robustness import robustness_plot
from shiftlab.report.figures.scatter import accuracy_scatter
from shiftlab.report.figures.style import CLIP, MARKERS, PALETTE, percent_ticks
from shiftlab.report.figures.thumbnails import thumbnail_grid

__all__ = ["CLIP", "MARKERS", "PALETTE", "accuracy_scatter", "bar_chart", "category_fraction_figure",
           "confusion_figure", "percent_ticks", "robustness_plot", "thumbnail_grid"]
