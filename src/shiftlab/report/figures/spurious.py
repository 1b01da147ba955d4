"""Figures of the spurious-features study: one neural-PCA component, its visualisation beside its top images."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

from shiftlab.report.figures.thumbnails import thumbnail_grid


def component_figure(visualisation: np.ndarray, top_images: Sequence, alphas: Sequence[float], *, title: str,
                     probability: float) -> Figure:
    """The visualisation (C, H, W) floats in [0, 1] first, captioned with its class probability, then the
    top images (paths or arrays) captioned with their α, in one row (two for more than 7 images)."""
    images = [visualisation, *top_images]
    captions = [f"visualisation, p = {probability:.3f}", *(f"α = {a:.2f}" for a in alphas)]
    colours = ["#0072B2", *(["#333333"] * len(top_images))]
    return thumbnail_grid(images, captions, ncols=min(len(images), 8), title=title, cell=1.25,
                          caption_colors=colours)


def spurious_score_plot(table) -> Figure:
    """Two panels against test accuracy, one point per model before SpuFix (circle) and after (triangle), joined:
    the spurious score (mean AP over the cue classes, higher = less reliance on the cue) and the mean probability
    of the cue's class on images of the cue alone (lower = less reliance). ``table`` has columns ``model``,
    ``test top-1``, ``spurious score (AP)``, ``mean p_k on cue images`` and their ``SpuFix: …`` twins
    (``SpuFix: test top-1``, ``SpuFix: AP``, ``SpuFix: mean p_k on cue images``); accuracies as fractions."""
    import matplotlib

    from shiftlab.report.figures.style import PALETTE, STYLE, new_figure

    panels = [("spurious score (AP)", "SpuFix: AP", "spurious score (mean AP)"),
              ("mean p_k on cue images", "SpuFix: mean p_k on cue images", "mean p(cue's class) on cue images")]
    with matplotlib.rc_context(STYLE):
        fig = new_figure((9.6, 3.8))
        axes = fig.subplots(1, 2)
        for ax, (before, after, label) in zip(axes, panels):
            for i, r in enumerate(table.itertuples(index=False)):
                row = dict(zip(table.columns, r))
                col = PALETTE[i % len(PALETTE)]
                x0, x1 = 100 * row["test top-1"], 100 * row["SpuFix: test top-1"]
                ax.plot([x0, x1], [row[before], row[after]], color=col, lw=1, alpha=0.7)
                ax.scatter([x0], [row[before]], marker="o", color=col, s=26, zorder=3,
                           label=f"{row['model']}" if ax is axes[-1] else None)
                ax.scatter([x1], [row[after]], marker="^", color=col, s=26, zorder=3)
            ax.set_xlabel("test top-1 (%)")
            ax.set_ylabel(label)
        axes[-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False,
                        title="circle: before, triangle: SpuFix", title_fontsize=7)
    return fig
