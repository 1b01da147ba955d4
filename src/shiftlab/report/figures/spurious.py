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
