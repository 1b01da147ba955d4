"""Figures: logit axes with percent ticks, y = x, points where the data are, error bars, groups, bad input."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import LineCollection, PathCollection
from matplotlib.figure import Figure

from shiftlab.errors import InputError
from shiftlab.metrics.scales import EPS
from shiftlab.report.figures import CLIP, accuracy_scatter, bar_chart, percent_ticks, thumbnail_grid


def _logit(a):
    a = np.asarray(a, float)
    return np.log(a / (1 - a))


def _df(n: int = 12, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.55, 0.9, n)
    y = 1 / (1 + np.exp(-(0.9 * _logit(x) - 0.5 + rng.normal(0, 0.05, n))))
    fam = np.array(["standard", "robust", "more data"])[np.arange(n) % 3]
    half = 0.01
    return pd.DataFrame({"model": [f"m{i}" for i in range(n)], "family": fam, "top1_id": x, "top1_ood": y,
                         "id_low": x - half, "id_high": x + half, "ood_low": y - 2 * half, "ood_high": y + 2 * half})


def _points(ax) -> dict[str, np.ndarray]:
    return {c.get_gid(): np.asarray(c.get_offsets()) for c in ax.collections
            if isinstance(c, PathCollection) and (c.get_gid() or "").startswith("points")}


def _line(ax, gid):
    return next(ln for ln in ax.get_lines() if ln.get_gid() == gid)


def _inv_logit(t):
    return 1 / (1 + np.exp(-np.asarray(t, float)))


def _band_vertices_match(ax, bx, blo, bhi):
    """The "fit-band" polygon runs along (bx, blo) and back along (bx, bhi), and through nothing else."""
    (band,) = [c for c in ax.collections if c.get_gid() == "fit-band"]
    (path,) = band.get_paths()
    got = {(round(a, 9), round(b, 9)) for a, b in path.vertices}
    want = {(round(a, 9), round(b, 9)) for a, b in [*zip(bx, blo), *zip(bx, bhi)]}
    assert got == want


def test_scatter_logit_axes_with_percent_ticks():
    fig = accuracy_scatter(_df(), group="family")
    ax = fig.axes[0]
    assert ax.get_xscale() == "logit" and ax.get_yscale() == "logit"
    fig.canvas.draw()
    for axis in (ax.xaxis, ax.yaxis):
        labels = [t.get_text() for t in axis.get_ticklabels() if t.get_text()]
        assert len(labels) >= 3
        assert all(lab.endswith("%") and float(lab[:-1]) for lab in labels), labels
        ticks = axis.get_ticklocs()
        lo, hi = sorted(axis.get_view_interval())
        assert all(lo <= t <= hi for t in ticks)
        assert [f"{round(100 * t, 6):g}%" for t in ticks] == labels
    # the range covers the data with a margin, inside (0, 1)
    df = _df()
    xlo, xhi = ax.get_xlim()
    assert 0 < xlo < df.top1_id.min() and df.top1_id.max() < xhi < 1
    ylo, yhi = ax.get_ylim()
    assert 0 < ylo < df.top1_ood.min() and df.top1_ood.max() < yhi < 1


def test_identity_line_spans_the_axes():
    fig = accuracy_scatter(_df(), group="family")
    ax = fig.axes[0]
    ln = _line(ax, "y=x")
    xd, yd = ln.get_xdata(), ln.get_ydata()
    np.testing.assert_allclose(xd, yd)
    assert ln.get_linestyle() == "--"
    (xlo, xhi), (ylo, yhi) = ax.get_xlim(), ax.get_ylim()
    # from the lower-left to the upper-right of the union of both ranges: it runs through the whole plot
    assert min(xd) <= min(xlo, ylo) + 1e-12 and max(xd) >= max(xhi, yhi) - 1e-12
    assert max(xlo, ylo) < min(xhi, yhi), "the diagonal crosses the visible box"
    assert "y = x" in [t.get_text() for t in ax.get_legend().get_texts()]


def test_identity_line_stays_visible_when_shifted_accuracy_is_far_lower():
    df = pd.DataFrame({"model": ["a", "b"], "top1_id": [0.95, 0.97], "top1_ood": [0.30, 0.40]})
    ax = accuracy_scatter(df).axes[0]
    (xlo, _xhi), (ylo, yhi) = ax.get_xlim(), ax.get_ylim()
    assert yhi > xlo  # y range widened until y = x enters the plot
    assert ylo < 0.30 < 0.40 < yhi


def test_points_at_data_positions_and_groups_in_legend():
    df = _df()
    ax = accuracy_scatter(df, group="family").axes[0]
    pts = _points(ax)
    assert set(pts) == {"points:standard", "points:robust", "points:more data"}
    for g, sub in df.groupby("family"):
        np.testing.assert_allclose(pts[f"points:{g}"], sub[["top1_id", "top1_ood"]].to_numpy())
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["y = x", "standard", "robust", "more data"]  # order of first appearance
    colours = {tuple(c.get_facecolor()[0]) for c in ax.collections if isinstance(c, PathCollection)}
    assert len(colours) == 3


def test_points_are_labelled_with_model_names():
    df = _df(8)
    ax = accuracy_scatter(df, group="family").axes[0]
    texts = {t.get_text(): t for t in ax.texts}
    assert set(df.model) <= set(texts)
    for _, r in df.iterrows():
        np.testing.assert_allclose(texts[r.model].xy, (r.top1_id, r.top1_ood))
    ax2 = accuracy_scatter(df, annotate=["m1", "m2"]).axes[0]
    assert {t.get_text() for t in ax2.texts} == {"m1", "m2"}
    assert not accuracy_scatter(df, label=None).axes[0].texts


def test_labels_avoid_each_other_where_there_is_room():
    # a 4x3 lattice of well separated points: every label finds a free spot
    xs, ys = np.meshgrid(np.linspace(0.5, 0.9, 4), np.linspace(0.4, 0.8, 3))
    df = pd.DataFrame({"model": [f"model-{i:02d}" for i in range(12)], "top1_id": xs.ravel(), "top1_ood": ys.ravel()})
    fig = accuracy_scatter(df)
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    boxes = [t.get_window_extent(r) for t in fig.axes[0].texts]
    assert len(boxes) == 12
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])


def test_error_bars_from_interval_columns():
    df = _df(6)
    ax = accuracy_scatter(df, x_err=("id_low", "id_high"), y_err=("ood_low", "ood_high")).axes[0]
    segs = [np.asarray(s) for c in ax.collections if isinstance(c, LineCollection) for s in c.get_segments()]
    assert len(segs) == 2 * len(df)
    horiz = sorted((s[0, 0], s[1, 0]) for s in segs if np.isclose(s[0, 1], s[1, 1]))
    vert = sorted((s[0, 1], s[1, 1]) for s in segs if np.isclose(s[0, 0], s[1, 0]))
    np.testing.assert_allclose(horiz, sorted(zip(df.id_low, df.id_high)))
    np.testing.assert_allclose(vert, sorted(zip(df.ood_low, df.ood_high)))
    ax0 = accuracy_scatter(df).axes[0]
    assert not [c for c in ax0.collections if isinstance(c, LineCollection)]


def test_fit_line_and_band():
    df = _df()
    bx = np.linspace(0.5, 0.95, 20)
    band = (bx, 1 / (1 + np.exp(-(0.9 * _logit(bx) - 0.6))), 1 / (1 + np.exp(-(0.9 * _logit(bx) - 0.4))))
    ax = accuracy_scatter(df, fit=(0.9, -0.5), band=band, fit_label="standard models").axes[0]
    ln = _line(ax, "fit")
    np.testing.assert_allclose(_logit(ln.get_ydata()), 0.9 * _logit(ln.get_xdata()) - 0.5, atol=1e-9)
    assert min(ln.get_xdata()) == pytest.approx(ax.get_xlim()[0]) and max(ln.get_xdata()) == pytest.approx(
        ax.get_xlim()[1])
    _band_vertices_match(ax, *band)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["y = x", "standard models"]
    ax2 = accuracy_scatter(df, fit=(1.0, 0.0)).axes[0]
    assert [t.get_text() for t in ax2.get_legend().get_texts()] == ["y = x", "fit: slope 1.000, intercept 0.000"]
    assert not [c for c in ax2.collections if c.get_gid() == "fit-band"]  # no band given, none drawn


def test_zero_and_one_are_clipped_with_a_note():
    df = pd.DataFrame({"model": ["a", "b", "c"], "top1_id": [0.0, 0.5, 1.0], "top1_ood": [0.0, 0.4, 1.0]})
    with pytest.warns(UserWarning, match="0% or 100%"):
        fig = accuracy_scatter(df)
    ax = fig.axes[0]
    assert CLIP == EPS  # one clip constant: a model at 0 % or 100 % is drawn where the fits put it
    pts = _points(ax)["points"]
    np.testing.assert_allclose(pts[:, 0], [CLIP, 0.5, 1 - CLIP], rtol=0, atol=1e-12)
    np.testing.assert_allclose(pts[:, 1], [CLIP, 0.4, 1 - CLIP], rtol=0, atol=1e-12)
    assert np.isfinite(_logit(pts)).all()
    # both axes reach the clipped points, and stay inside (0, 1)
    for lo, hi in (ax.get_xlim(), ax.get_ylim()):
        assert 0 < lo < CLIP and 1 - CLIP < hi < 1
    edge = f"{round(100 * CLIP, 6):g}% / {round(100 * (1 - CLIP), 6):g}%"
    assert [t.get_text() for t in ax.texts if "0% or 100%" in t.get_text()] == [
        f"2 point(s) with an accuracy of 0% or 100% drawn at {edge} (logit axes have no 0% or 100%)"]
    fig.savefig(__import__("io").BytesIO(), format="png")  # draws without errors


def test_nan_rows_dropped_with_warning():
    df = _df(5)
    df.loc[2, "top1_ood"] = np.nan
    with pytest.warns(UserWarning, match="1 row"):
        ax = accuracy_scatter(df).axes[0]
    assert len(_points(ax)["points"]) == 4
    assert "m2" not in {t.get_text() for t in ax.texts}


def test_bad_input_raises_actionable_errors():
    df = _df(3)
    with pytest.raises(InputError, match="divide percentages by 100"):
        accuracy_scatter(df.assign(top1_id=df.top1_id * 100))
    with pytest.raises(InputError, match="'nope' not in the table"):
        accuracy_scatter(df, x="nope")
    with pytest.raises(InputError, match="nothing to plot"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            accuracy_scatter(df.assign(top1_ood=np.nan))
    with pytest.raises(InputError, match="unknown scale"):
        accuracy_scatter(df, scale="log")


def test_other_scales_and_odd_names():
    df = _df(4)
    df.loc[0, "model"] = "$x_1$ <b>"
    ax = accuracy_scatter(df, scale="probit", title="$not math$").axes[0]
    assert ax.get_xscale() == "function"
    assert "$x_1$ <b>" in {t.get_text() for t in ax.texts}
    ax = accuracy_scatter(df, scale="linear").axes[0]
    assert ax.get_xscale() == "linear"
    ax.figure.canvas.draw()
    assert all(t.get_text().endswith("%") for t in ax.xaxis.get_ticklabels() if t.get_text())


@pytest.mark.parametrize("lo, hi, expected", [
    (0.4, 0.8, [40, 50, 60, 70, 80]),
    (0.6, 0.75, [60, 65, 70, 75]),
    (0.01, 0.99, [1, 10, 50, 90, 99]),
    (0.9, 0.999, [90, 95, 99, 99.9]),
])
def test_percent_ticks_are_round_and_spread(lo, hi, expected):
    np.testing.assert_allclose(percent_ticks(lo, hi) * 100, expected)


def test_percent_ticks_fit_any_range():
    for lo, hi in [(0.001, 0.999), (0.2, 0.21), (0.711, 0.713), (0.3, 0.95)]:
        t = percent_ticks(lo, hi)
        assert 2 <= len(t) <= 9 and (t >= lo).all() and (t <= hi).all()
        sep = np.diff(_logit(t))
        assert (sep > 0).all()


def test_bar_chart_sorted_horizontal():
    s = pd.Series({"b": 3, "a": 10, "c": 1})
    ax = bar_chart(s, title="counts").axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    widths = [p.get_width() for p in ax.patches]
    assert widths == [10, 3, 1]  # bars in position order 0, 1, 2; the axis is inverted: largest on top
    assert labels == ["a", "b", "c"] and ax.yaxis_inverted()
    assert [t.get_text() for t in ax.texts] == ["10", "3", "1"]
    many = pd.Series({f"k{i}": 100 - i for i in range(40)})
    ax = bar_chart(many, max_bars=10).axes[0]
    assert len(ax.patches) == 10 and ax.get_yticklabels()[-1].get_text() == "(31 others)"
    assert ax.patches[-1].get_width() == sum(100 - i for i in range(9, 40))
    df = pd.DataFrame({"cat": ["x", "y"], "n": [1, 2]})
    assert [p.get_width() for p in bar_chart(df, label="cat", value="n").axes[0].patches] == [2, 1]


def test_thumbnail_grid():
    imgs = [np.full((8, 8), i / 10) for i in range(10)] + [np.zeros((3, 16, 16), np.uint8)]
    fig = thumbnail_grid(imgs, [f"c{i}" for i in range(11)], ncols=4, title="grid")
    assert isinstance(fig, Figure)
    shown = [ax for ax in fig.axes if ax.images]
    assert len(fig.axes) == 12 and len(shown) == 11
    assert [ax.texts[0].get_text() for ax in shown] == [f"c{i}" for i in range(11)]
    np.testing.assert_allclose(shown[3].images[0].get_array(), imgs[3])
    with pytest.raises(InputError, match="one caption per image"):
        thumbnail_grid(imgs, ["x"])


def test_sample_scatter_draws_every_part():
    """The full sample scatter (groups, error bars, fit and band), checked on the Figure; the PNG is written
    beside the browser screenshot for a person to look at."""
    from pathlib import Path

    from PIL import Image

    df = _df(24, seed=3)
    df.loc[[2, 5], "family"] = "more data"
    bx = np.linspace(0.5, 0.95, 20)
    band = (bx, _inv_logit(0.9 * _logit(bx) - 0.6), _inv_logit(0.9 * _logit(bx) - 0.4))
    fig = accuracy_scatter(df, group="family", x_err=("id_low", "id_high"), y_err=("ood_low", "ood_high"),
                           fit=(0.9, -0.5), band=band, title="original → new test set",
                           xlabel="top-1, original test set", ylabel="top-1, new test set")
    ax = fig.axes[0]
    fig.canvas.draw()
    # logit axes, ticked at round percentages inside the range, labelled in percent
    assert (ax.get_xscale(), ax.get_yscale()) == ("logit", "logit")
    for axis, want in ((ax.xaxis, [60, 70, 80, 90]), (ax.yaxis, [40, 50, 60, 70, 80])):
        np.testing.assert_allclose(axis.get_ticklocs(), np.array(want) / 100)
        assert [t.get_text() for t in axis.get_ticklabels()] == [f"{p}%" for p in want]
    (xlo, xhi), (ylo, yhi) = ax.get_xlim(), ax.get_ylim()
    assert xlo < df.id_low.min() and df.id_high.max() < xhi  # the error bars fit in
    assert ylo < df.ood_low.min() and df.ood_high.max() < yhi
    assert (ax.get_title(loc="left"), ax.get_xlabel(), ax.get_ylabel()) == (
        "original → new test set", "top-1, original test set", "top-1, new test set")
    # one point per model at its accuracies, one marker set per family
    pts = _points(ax)
    assert sorted(pts) == ["points:more data", "points:robust", "points:standard"]
    for g, sub in df.groupby("family"):
        np.testing.assert_allclose(pts[f"points:{g}"], sub[["top1_id", "top1_ood"]].to_numpy())
    segs = [np.asarray(s) for c in ax.collections if isinstance(c, LineCollection) for s in c.get_segments()]
    assert len(segs) == 2 * 24
    horiz = sorted((s[0, 0], s[1, 0]) for s in segs if np.isclose(s[0, 1], s[1, 1]))
    vert = sorted((s[0, 1], s[1, 1]) for s in segs if np.isclose(s[0, 0], s[1, 0]))
    np.testing.assert_allclose(horiz, sorted(zip(df.id_low, df.id_high)))
    np.testing.assert_allclose(vert, sorted(zip(df.ood_low, df.ood_high)))
    # the fit: y = t⁻¹(0.9 · t(x) − 0.5) across the x axis, and its band between the given curves
    ln = _line(ax, "fit")
    np.testing.assert_allclose(ln.get_ydata(), _inv_logit(0.9 * _logit(ln.get_xdata()) - 0.5), rtol=1e-9)
    np.testing.assert_allclose([ln.get_xdata()[0], ln.get_xdata()[-1]], [xlo, xhi])
    _band_vertices_match(ax, *band)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        "y = x", "fit: slope 0.900, intercept -0.500", "standard", "robust", "more data"]
    assert sorted(t.get_text() for t in ax.texts) == sorted(df.model)  # every model named, no clipping note
    art = Path(__file__).resolve().parents[2] / "test-artifacts"
    art.mkdir(exist_ok=True)
    fig.savefig(art / "accuracy-scatter.png", dpi=150, bbox_inches="tight")
    with Image.open(art / "accuracy-scatter.png") as im:
        assert im.format == "PNG" and im.width > 7 * 150 * 0.8  # a 7-inch figure at 150 dpi, tight box


def test_outside_legend_covers_no_point_where_best_cannot_find_a_free_spot():
    # points on a dense grid over the whole plot: no spot inside the axes is free for a legend
    g = np.linspace(0.3, 0.9, 15)
    xx, yy = np.meshgrid(g, g)
    df = pd.DataFrame({"model": [f"m{i}" for i in range(xx.size)], "top1_id": xx.ravel(), "top1_ood": yy.ravel(),
                       "family": np.array(["a", "b", "c", "d", "e", "f"])[np.arange(xx.size) % 6]})

    def covered(fig) -> int:
        fig.canvas.draw()
        ax = fig.axes[0]
        box = ax.get_legend().get_window_extent(fig.canvas.get_renderer())
        pts = np.vstack([ax.transData.transform(p) for p in _points(ax).values()])
        inside = (pts[:, 0] >= box.x0) & (pts[:, 0] <= box.x1) & (pts[:, 1] >= box.y0) & (pts[:, 1] <= box.y1)
        return int(inside.sum())

    assert covered(accuracy_scatter(df, group="family", label=None)) > 0  # "best" takes the least bad spot
    fig = accuracy_scatter(df, group="family", label=None, legend_loc="outside", figsize=(9, 6))
    assert covered(fig) == 0
    ax = fig.axes[0]
    assert ax.get_legend().get_window_extent().x0 > ax.get_window_extent().x1  # right of the axes, inside the figure
    assert ax.get_legend().get_window_extent().x1 <= fig.bbox.x1 + 1
