"""Figures of the robust-features study (S4): columns of images side by side, one row per example (the
reconstruction grid original | robust | non-robust, and D_det examples original | adversarial); and the MNIST
study's per-group test accuracy after each training epoch, beside the published figures."""

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


def epoch_curves_figure(curves: Mapping[str, Sequence[Mapping[str, float]]], published: Mapping[str, Sequence[float]],
                        groups: Sequence[str], *, title: str | None = None) -> Figure:
    """One panel per model of ``curves`` ({model: [{"epoch": e, group: accuracy, …}, …]}): each group's test
    accuracy after every epoch (solid, markers), and the published figure for that model and group where
    ``published`` has one (dashed, same colour), so that a reader sees whether a cell was still moving when
    training stopped and how far it ends from the paper."""
    import matplotlib

    from shiftlab.report.figures.style import MARKERS, PALETTE, STYLE, new_figure

    names = [m for m in curves if curves[m]]
    if not names:
        raise ValueError("no curve to draw")
    with matplotlib.rc_context(STYLE):
        fig = new_figure((3.2 * len(names) + 1.6, 3.2))
        axes = np.atleast_1d(fig.subplots(1, len(names), sharey=True))
        for ax, name in zip(axes, names):
            epochs = [r["epoch"] for r in curves[name]]
            for i, g in enumerate(groups):
                colour = PALETTE[i % len(PALETTE)]
                ax.plot(epochs, [r[g] for r in curves[name]], color=colour, marker=MARKERS[i % len(MARKERS)],
                        markersize=3 if len(epochs) <= 30 else 0, linewidth=1.3, label=g)
                if name in published:
                    ax.axhline(published[name][i], color=colour, linestyle="--", linewidth=0.9)
            ax.set_title(name, fontsize=9)
            ax.set_xlabel("epoch")
            if len(epochs) == 1:
                ax.set_xticks(epochs)
        axes[0].set_ylabel("test accuracy")
        axes[-1].legend(loc="center left", bbox_to_anchor=(1.02, 0.5), title="group (dashed: published)",
                        title_fontsize=8)
        if title:
            fig.suptitle(title, fontsize=9)
        return fig


def robust_curve_figure(table, *, title: str | None = None) -> Figure:
    """Robust accuracy against the attack's radius, one line per model (``robust_accuracy``'s table with several
    radii: columns model, eps, clean, robust and their ``_low`` / ``_high`` 95 % intervals, shaded); each line
    starts at ε = 0 from the model's clean accuracy, so the drop from clean is read off the plot."""
    import matplotlib

    from shiftlab.report.figures.style import MARKERS, PALETTE, STYLE, new_figure, percent_label, plain_label

    if not len(table):
        raise ValueError("no row to draw")
    with matplotlib.rc_context(STYLE):
        fig = new_figure((6.0, 4.0))
        ax = fig.subplots()
        for i, (name, rows) in enumerate(table.groupby("model", sort=False)):
            rows = rows.sort_values("eps")
            first = rows.iloc[0]
            eps = np.r_[0.0, rows["eps"].to_numpy(float)]
            acc = np.r_[first["clean"], rows["robust"].to_numpy(float)]
            lo = np.r_[first["clean_low"], rows["robust_low"].to_numpy(float)]
            hi = np.r_[first["clean_high"], rows["robust_high"].to_numpy(float)]
            colour = PALETTE[i % len(PALETTE)]
            ax.plot(eps, acc, color=colour, marker=MARKERS[i % len(MARKERS)], markersize=4, linewidth=1.4,
                    label=plain_label(name))
            ax.fill_between(eps, lo, hi, color=colour, alpha=0.15, linewidth=0)
        ax.set_xlabel(f"radius ε ({table['attack'].iloc[0]}, pixel units in [0, 1])")
        ax.set_ylabel("robust accuracy (ε = 0: clean)")
        ax.set_ylim(-0.02, 1.02)
        ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda a, _pos: percent_label(a)))
        ax.legend(loc="best")
        if title:
            ax.set_title(plain_label(title), fontsize=9)
        return fig
