"""Figures of the robust-features study (S4): columns of images side by side, one row per example (the
reconstruction grid original | robust | non-robust, and D_det examples original | adversarial)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure


def image_columns_figure(columns: Mapping[str, np.ndarray], *, row_labels: Sequence[str] | None = None,
                         title: str | None = None, cell: float = 1.0) -> Figure:
    """One column per entry of ``columns`` (title → images (N, H, W) or (N, C, H, W), floats in [0, 1] or
    uint8), one row per example; ``row_labels`` (N) are written left of each row."""
    import matplotlib

    from shiftlab.report.figures.style import STYLE, new_figure

    arrays = [np.asarray(a) for a in columns.values()]
    n = len(arrays[0])
    if any(len(a) != n for a in arrays):
        raise ValueError("every column needs the same number of images")
    with matplotlib.rc_context(STYLE):
        fig = new_figure((cell * len(arrays) + (0.6 if row_labels else 0), cell * n + (0.5 if title else 0.3)))
        axes = np.asarray(fig.subplots(n, len(arrays), squeeze=False))
        for j, (name, a) in enumerate(zip(columns, arrays)):
            for i in range(n):
                img = a[i].astype(np.float32) / (255.0 if a.dtype == np.uint8 else 1.0)
                if img.ndim == 3:
                    img = img[0] if img.shape[0] == 1 else img.transpose(1, 2, 0)
                ax = axes[i, j]
                ax.imshow(np.clip(img, 0, 1), cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=1,
                          interpolation="nearest")
                ax.set_xticks([])
                ax.set_yticks([])
                if i == 0:
                    ax.set_title(name, fontsize=8)
                if j == 0 and row_labels is not None:
                    ax.set_ylabel(row_labels[i], fontsize=7, rotation=0, ha="right", va="center")
        if title:
            fig.suptitle(title, fontsize=9)
        return fig
