"""Grids of image thumbnails with captions."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from shiftlab.errors import InputError
from shiftlab.report.figures.style import (
    STYLE,
    new_figure,
)


def _as_array(im) -> np.ndarray:
    from PIL import Image

    if isinstance(im, (str, Path)):
        with Image.open(im) as f:
            f.load()
            return np.asarray(f.convert("RGB") if f.mode not in ("L", "RGB") else f)
    if isinstance(im, Image.Image):
        return np.asarray(im.convert("RGB") if im.mode not in ("L", "RGB") else im)
    a = np.asarray(im)
    if a.ndim == 3 and a.shape[0] in (1, 3) and a.shape[-1] not in (1, 3):  # CHW tensor layout
        a = np.moveaxis(a, 0, -1)
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    return a


def thumbnail_grid(
    images: Sequence,
    captions: Sequence[str] | None = None,
    ncols: int = 8,
    *,
    title: str | None = None,
    cell: float = 1.3,
    cmap: str = "gray",
    caption_colors: Sequence[str] | None = None,
) -> Figure:
    """A grid of small images with a caption under each.

    Parameters
    ----------
    images : sequence of paths, PIL images or arrays
        Arrays are (H, W) grey, (H, W, 3) RGB or (C, H, W); uint8 in [0, 255] or floats in [0, 1].
    captions : sequence of str, optional
        One per image (e.g. "label 3 → pred 8").
    ncols : int, default=8
    title : str, optional
    cell : float, default=1.3
        Inches per image.
    cmap : str, default="gray"
        For grey images; small images are shown with nearest-neighbour pixels, never smoothed.
    caption_colors : sequence of str, optional
        One colour per caption (e.g. red for a wrong prediction).

    Returns
    -------
    fig : matplotlib.figure.Figure
    """
    images = list(images)
    if not images:
        raise InputError("thumbnail_grid needs at least one image")
    if captions is not None and len(captions) != len(images):
        raise InputError(f"{len(captions)} captions for {len(images)} images; give one caption per image")
    ncols = max(1, min(ncols, len(images)))
    nrows = math.ceil(len(images) / ncols)
    cap_h = 0.28 if captions is not None else 0.05
    with matplotlib.rc_context({**STYLE, "axes.grid": False}):
        fig = new_figure((ncols * cell, nrows * (cell + cap_h) + (0.35 if title else 0)))
        fig.get_layout_engine().set(w_pad=0.02, h_pad=0.02, wspace=0.02, hspace=0.02)
        axes = fig.subplots(nrows, ncols, squeeze=False)
        for i, ax in enumerate(axes.flat):
            ax.set_axis_off()
            if i >= len(images):
                continue
            a = _as_array(images[i])
            grey = a.ndim == 2
            vmax = 1.0 if a.dtype.kind == "f" and a.max(initial=0) <= 1 else 255
            ax.imshow(a, cmap=cmap if grey else None, vmin=0 if grey else None, vmax=vmax if grey else None,
                      interpolation="nearest" if max(a.shape[:2]) < 64 else "antialiased")
            if captions is not None:
                col = caption_colors[i] if caption_colors is not None else "#333333"
                ax.text(0.5, -0.03, str(captions[i]), transform=ax.transAxes, ha="center", va="top",
                        fontsize=7.5, color=col, parse_math=False)
        if title:
            fig.suptitle(title, fontsize=11, fontweight="bold", x=0.01, ha="left")
    return fig
