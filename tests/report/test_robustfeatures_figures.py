"""The robust-features figures draw what they are given: the image grid shows each image in its cell, the epoch
curves one line per group per model with the published figure dashed beside it."""

from __future__ import annotations

import numpy as np
import pytest

from shiftlab.report.figures.robustfeatures import epoch_curves_figure, image_columns_figure

GROUPS = ["1 vertical lines", "2 horizontal lines", "3 noise"]


def _curve(start: float, n: int) -> list[dict]:
    return [{"epoch": e, **{g: start + 0.01 * e + 0.1 * i for i, g in enumerate(GROUPS)}} for e in range(1, n + 1)]


def test_epoch_curves_draw_every_group_per_model_and_the_published_figure_dashed():
    curves = {"standard": _curve(0.5, 4), "worst-of-k": _curve(0.6, 3), "new model": _curve(0.2, 2)}
    published = {"standard": (0.82, 0.55, 0.81), "worst-of-k": (0.97, 0.96, 0.97)}
    fig = epoch_curves_figure(curves, published, GROUPS)
    axes = fig.axes
    assert [ax.get_title() for ax in axes] == list(curves)
    for ax, (name, rows) in zip(axes, curves.items()):
        solid = [ln for ln in ax.get_lines() if ln.get_linestyle() == "-"]
        dashed = [ln for ln in ax.get_lines() if ln.get_linestyle() == "--"]
        assert [ln.get_label() for ln in solid] == GROUPS
        for ln, g in zip(solid, GROUPS):
            assert list(ln.get_xdata()) == [r["epoch"] for r in rows]
            assert np.allclose(ln.get_ydata(), [r[g] for r in rows])
        # a published value per group, in its group's colour; none for a model the paper did not have
        assert [float(ln.get_ydata()[0]) for ln in dashed] == list(published.get(name, ()))
        assert [ln.get_color() for ln in dashed] == [ln.get_color() for ln in solid][:len(dashed)]
    assert axes[-1].get_legend() is not None


def test_epoch_curves_refuse_nothing_to_draw():
    with pytest.raises(ValueError, match="no curve"):
        epoch_curves_figure({"standard": []}, {}, GROUPS)


def test_image_columns_put_each_image_in_its_cell_and_label_the_rows():
    rng = np.random.default_rng(0)
    cols = {"original": rng.random((3, 28, 28)).astype(np.float32),
            "robust": rng.integers(0, 256, (3, 1, 28, 28), dtype=np.uint8)}
    fig = image_columns_figure(cols, row_labels=["a", "b", "c"])
    axes = np.asarray(fig.axes).reshape(3, 2)
    assert [ax.get_title() for ax in axes[0]] == ["original", "robust"]
    assert [ax.get_ylabel() for ax in axes[:, 0]] == ["a", "b", "c"]
    for i in range(3):
        assert np.allclose(axes[i, 0].get_images()[0].get_array(), cols["original"][i])
        assert np.allclose(axes[i, 1].get_images()[0].get_array(), cols["robust"][i, 0] / 255.0)
    with pytest.raises(ValueError, match="same number"):
        image_columns_figure({"a": np.zeros((2, 4, 4)), "b": np.zeros((3, 4, 4))})


def test_the_robust_curve_starts_at_clean_accuracy_and_follows_the_table():
    import pandas as pd

    from shiftlab.report.figures.robustfeatures import robust_curve_figure

    rows = []
    for model, clean, robust in (("std", 0.95, (0.9, 0.2)), ("adv", 0.9, (0.85, 0.6))):
        for e, r in zip((0.5, 2.0), robust):
            rows.append({"model": model, "attack": "pgd-l2", "eps": e, "clean": clean, "clean_low": clean - 0.03,
                         "clean_high": clean + 0.02, "robust": r, "robust_low": r - 0.05, "robust_high": r + 0.05})
    fig = robust_curve_figure(pd.DataFrame(rows[::-1]))  # rows in any order: each line is sorted by radius
    lines = fig.axes[0].get_lines()
    assert [ln.get_label() for ln in lines] == ["adv", "std"]
    assert list(lines[1].get_xdata()) == [0.0, 0.5, 2.0] and np.allclose(lines[1].get_ydata(), [0.95, 0.9, 0.2])
    assert np.allclose(lines[0].get_ydata(), [0.9, 0.85, 0.6])
    with pytest.raises(ValueError, match="no row"):
        robust_curve_figure(pd.DataFrame(columns=["model", "eps"]))
