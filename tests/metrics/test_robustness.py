"""Effective robustness (SPECS S1.7): hand-made lines, bootstrap, loaders, plot, and the published fits."""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PolyCollection

from shiftlab.data.formats.testbed import read_testbed
from shiftlab.data.layouts import read_revision_json
from shiftlab.errors import InputError
from shiftlab.metrics import accuracy_summary, clopper_pearson
from shiftlab.metrics.robustness import (
    EPS,
    LineFit,
    add_clopper_pearson,
    band_for_table,
    bootstrap_band,
    bootstrap_fits,
    effective_robustness,
    fit_line,
    inverse_transform,
    pivot_results,
    transform,
)
from shiftlab.report.figures import robustness_plot

V2 = "imagenetv2-matched-frequency-format-val"


def logit(a):
    a = np.asarray(a, float)
    return np.log(a / (1 - a))


def expit(t):
    return 1 / (1 + np.exp(-np.asarray(t, float)))


def on_line(slope=0.9, intercept=-0.5, n=8):
    """Models exactly on t(y) = slope · t(x) + intercept in logit space."""
    x = np.linspace(0.55, 0.85, n)
    return x, expit(slope * logit(x) + intercept)


def table_on_line(**kw):
    x, y = on_line(**kw)
    return pd.DataFrame({"model": [f"m{i}" for i in range(len(x))], "type": "STANDARD", "val": x, "v2": y})


# ------------------------------------------------------------------------------------------- transforms

@pytest.mark.parametrize("scale", ["logit", "probit", "linear"])
def test_inverse_transform_round_trips(scale):
    a = np.array([0.001, 0.1, 0.37, 0.5, 0.8, 0.999])
    np.testing.assert_allclose(inverse_transform(transform(a, scale), scale), a, rtol=1e-12, atol=1e-12)
    t = np.array([-3.0, -0.2, 0.0, 1.5])
    if scale == "linear":
        t = np.array([0.0, 0.2, 0.7])
    np.testing.assert_allclose(transform(inverse_transform(t, scale), scale), t, rtol=1e-9, atol=1e-9)


def test_transforms_match_their_definitions():
    a = np.array([0.2, 0.5, 0.9])
    np.testing.assert_allclose(transform(a, "logit"), np.log(a / (1 - a)))
    np.testing.assert_allclose(transform(a, "probit"), [-0.8416212335729143, 0.0, 1.2815515655446004])
    np.testing.assert_array_equal(transform(a, "linear"), a)
    with pytest.raises(InputError, match="unknown scale"):
        transform(a, "log")


@pytest.mark.parametrize("scale", ["logit", "probit"])
def test_zero_and_one_are_clipped_not_infinite(scale):
    t = transform([0.0, 1.0], scale)
    assert np.isfinite(t).all()
    np.testing.assert_allclose(t, transform([EPS, 1 - EPS], scale))
    # a fit and effective robustness with a model at 0 % and one at 100 %: finite everywhere
    df = pd.DataFrame({"model": list("abcd"), "val": [0.0, 0.3, 0.6, 1.0], "v2": [0.0, 0.2, 0.5, 1.0]})
    with np.errstate(all="raise"):
        er = effective_robustness(df, "val", "v2", scale=scale, n_boot=50)
    num = er.table.select_dtypes("number").drop(columns="relative_robustness")
    assert np.isfinite(num.to_numpy()).all()
    assert np.isfinite([er.fit.slope, er.fit.intercept]).all()


# ------------------------------------------------------------------------------------------- fitting

def test_fit_line_recovers_a_known_line_in_each_scale():
    x = np.array([0.5, 0.6, 0.7, 0.8, 0.9])
    for scale, fwd, inv in (("logit", logit, expit), ("linear", lambda a: a, lambda t: t)):
        y = inv(0.8 * fwd(x) - 0.3)
        f = fit_line(x, y, scale)
        assert (f.slope, f.intercept, f.scale, f.n) == (pytest.approx(0.8), pytest.approx(-0.3), scale, 5)
        np.testing.assert_allclose(f.predict(x), y, atol=1e-12)


def test_fit_line_is_least_squares_against_polyfit():
    rng = np.random.default_rng(3)
    x = rng.uniform(0.4, 0.9, 30)
    y = np.clip(x - 0.1 + rng.normal(0, 0.03, 30), 0.01, 0.99)
    f = fit_line(x, y, "logit")
    slope, intercept = np.polyfit(logit(x), logit(y), 1)
    assert f.slope == pytest.approx(slope, abs=1e-10) and f.intercept == pytest.approx(intercept, abs=1e-10)


def test_fit_line_rejects_bad_input():
    with pytest.raises(InputError, match="at least 2"):
        fit_line([0.5], [0.4])
    with pytest.raises(InputError, match="same in-distribution"):
        fit_line([0.5, 0.5], [0.4, 0.3])
    with pytest.raises(InputError, match="percentages"):
        fit_line([50, 60], [40, 50])
    with pytest.raises(InputError, match="NaN"):
        fit_line([0.5, np.nan], [0.4, 0.3])


def test_points_on_a_line_have_zero_effective_robustness_and_a_degenerate_band():
    df = table_on_line()
    er = effective_robustness(df, "val", "v2", n_boot=200)
    f = er.fit
    assert f.slope == pytest.approx(0.9) and f.intercept == pytest.approx(-0.5) and f.n == 8
    np.testing.assert_allclose(er.table["effective_robustness"], 0, atol=1e-12)
    np.testing.assert_allclose(er.table["effective_robustness_low"], 0, atol=1e-9)
    np.testing.assert_allclose(er.table["effective_robustness_high"], 0, atol=1e-9)
    grid = np.array([0.5, 0.7, 0.9])
    lo, hi = bootstrap_band(df["val"], df["v2"], "logit", grid, n_boot=200)
    np.testing.assert_allclose(lo, hi, atol=1e-9)
    np.testing.assert_allclose(lo, expit(0.9 * logit(grid) - 0.5), atol=1e-9)
    assert er.table["relative_robustness"].isna().all()


def test_a_model_five_points_above_the_line():
    df = table_on_line()
    x_new = 0.7
    y_line = float(expit(0.9 * logit(x_new) - 0.5))
    df = pd.concat([df, pd.DataFrame({"model": ["robust"], "type": ["MORE_DATA"], "val": [x_new],
                                      "v2": [y_line + 0.05]})], ignore_index=True)
    er = effective_robustness(df, "val", "v2", n_boot=100).table.set_index("model")
    # not in the reference group, so the line is unchanged and the model sits 5 points above it
    assert not er.loc["robust", "in_reference"] and er["in_reference"].sum() == 8
    assert er.loc["robust", "predicted_ood"] == pytest.approx(y_line, abs=1e-12)
    assert er.loc["robust", "effective_robustness"] == pytest.approx(0.05, abs=1e-12)
    assert er.loc["robust", "effective_robustness_low"] == pytest.approx(0.05, abs=1e-9)
    # fitting on all models instead pulls the line up: the model's effective robustness shrinks
    er_all = effective_robustness(df, "val", "v2", reference=np.ones(len(df), bool), n_boot=0)
    er_all = er_all.table.set_index("model")
    assert 0 < er_all.loc["robust", "effective_robustness"] < 0.05
    assert er_all["effective_robustness_low"].isna().all()


def test_effective_robustness_in_accuracy_points_for_a_noisy_reference():
    rng = np.random.default_rng(0)
    x = rng.uniform(0.5, 0.85, 40)
    y = expit(0.95 * logit(x) - 0.4 + rng.normal(0, 0.05, 40))
    df = pd.DataFrame({"model": [f"m{i}" for i in range(40)], "val": x, "v2": y})
    er = effective_robustness(df, "val", "v2", scale="logit", n_boot=300, seed=1)
    f = fit_line(x, y, "logit")
    np.testing.assert_allclose(er.table["effective_robustness"], y - expit(f.slope * logit(x) + f.intercept))
    assert (er.table["effective_robustness_low"] <= er.table["effective_robustness"] + 1e-12).all()
    assert (er.table["effective_robustness_high"] >= er.table["effective_robustness"] - 1e-12).all()
    assert (er.table["effective_robustness_high"] - er.table["effective_robustness_low"] > 0).all()


def test_relative_robustness_against_a_baseline():
    df = pd.DataFrame({"model": ["base", "a", "b", "c"], "val": [0.76, 0.80, 0.70, 0.82],
                       "v2": [0.63, 0.70, 0.55, 0.69]})
    er = effective_robustness(df, "val", "v2", baseline="base", n_boot=0).table.set_index("model")
    np.testing.assert_allclose(er.loc[["base", "a", "b", "c"], "relative_robustness"], [0, 0.07, -0.08, 0.06],
                               atol=1e-12)
    with pytest.raises(InputError, match="baseline"):
        effective_robustness(df, "val", "v2", baseline="nope", n_boot=0)


def test_reference_selection_by_group_mask_and_missing_values():
    df = table_on_line()
    df.loc[0, "type"] = "ROBUST_INTV"
    df.loc[0, "v2"] += 0.1  # off the line, but not a reference model
    df = pd.concat([df, pd.DataFrame({"model": ["unevaluated"], "type": ["STANDARD"], "val": [0.7],
                                      "v2": [np.nan]})], ignore_index=True)
    er = effective_robustness(df, "val", "v2", n_boot=0)  # default reference: STANDARD
    assert er.fit.n == 7 and er.n_missing == 1 and "unevaluated" not in set(er.table["model"])
    assert er.fit.slope == pytest.approx(0.9)
    assert er.table.set_index("model").loc["m0", "effective_robustness"] == pytest.approx(0.1, abs=1e-12)
    er2 = effective_robustness(df, "val", "v2", reference=["STANDARD", "ROBUST_INTV"], n_boot=0)
    assert er2.fit.n == 8 and er2.fit.slope != pytest.approx(0.9)
    no_type = df.drop(columns="type")
    assert effective_robustness(no_type, "val", "v2", n_boot=0).fit.n == 8  # all models
    with pytest.raises(InputError, match="group column"):
        effective_robustness(no_type, "val", "v2", reference="STANDARD", n_boot=0)
    with pytest.raises(InputError, match="boolean mask"):
        effective_robustness(df, "val", "v2", reference=np.ones(3, bool), n_boot=0)
    with pytest.raises(InputError, match="only 1 reference"):
        effective_robustness(df, "val", "v2", reference="ROBUST_INTV", n_boot=0)
    with pytest.raises(InputError, match="not in the table"):
        effective_robustness(df, "val", "nope")


# ------------------------------------------------------------------------------------------- bootstrap

def noisy(n=25, seed=5):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.5, 0.85, n)
    return x, expit(logit(x) - 0.5 + rng.normal(0, 0.1, n))


def test_bootstrap_is_seeded():
    x, y = noisy()
    grid = np.linspace(0.5, 0.85, 7)
    a = bootstrap_band(x, y, "logit", grid, n_boot=300, seed=7)
    b = bootstrap_band(x, y, "logit", grid, n_boot=300, seed=7)
    c = bootstrap_band(x, y, "logit", grid, n_boot=300, seed=8)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0]) and not np.array_equal(a[1], c[1])
    np.testing.assert_array_equal(bootstrap_fits(x, y, n_boot=50, seed=1), bootstrap_fits(x, y, n_boot=50, seed=1))
    df = pd.DataFrame({"model": [f"m{i}" for i in range(len(x))], "val": x, "v2": y})
    e1, e2, e3 = (effective_robustness(df, "val", "v2", n_boot=200, seed=s) for s in (3, 3, 4))
    pd.testing.assert_frame_equal(e1.table, e2.table)
    lo1, lo3 = e1.table["effective_robustness_low"], e3.table["effective_robustness_low"]
    assert not np.array_equal(lo1, lo3)
    # the fit is not random
    np.testing.assert_array_equal(e1.table["effective_robustness"], e3.table["effective_robustness"])
    assert e1.seed == 3 and e1.n_boot == 200


def test_bootstrap_band_brackets_the_fit_and_matches_the_percentiles():
    x, y = noisy()
    grid = np.linspace(0.45, 0.9, 11)
    lo, hi = bootstrap_band(x, y, "logit", grid, n_boot=500, seed=0)
    f = fit_line(x, y, "logit")
    mid = f.predict(grid)
    assert (lo < mid).all() and (mid < hi).all()
    fits = bootstrap_fits(x, y, "logit", 500, 0)
    assert fits.shape == (500, 2)
    t = fits[:, :1] * logit(grid)[None] + fits[:, 1:]
    np.testing.assert_allclose(lo, expit(np.percentile(t, 2.5, axis=0)))
    np.testing.assert_allclose(hi, expit(np.percentile(t, 97.5, axis=0)))
    # a wider level gives a wider band; the band is narrowest near the centre of the data
    lo99, hi99 = bootstrap_band(x, y, "logit", grid, n_boot=500, seed=0, level=0.99)
    assert (lo99 <= lo).all() and (hi99 >= hi).all()
    width = logit(hi) - logit(lo)
    assert width[5] < width[0] and width[5] < width[-1]


def test_bootstrap_resamples_without_a_line_are_ignored():
    fits = bootstrap_fits([0.5, 0.6], [0.4, 0.5], "linear", n_boot=200, seed=0)
    bad = np.isnan(fits[:, 0])
    assert 0 < bad.sum() < 200  # both draws equal in about half of the resamples
    np.testing.assert_allclose(fits[~bad], [[1.0, -0.1]] * int((~bad).sum()), atol=1e-12)
    lo, hi = bootstrap_band([0.5, 0.6], [0.4, 0.5], "linear", [0.55], n_boot=200, seed=0)
    assert lo[0] == pytest.approx(0.45) and hi[0] == pytest.approx(0.45)


# ------------------------------------------------------------------------------------------- loaders

def test_load_testbed_percent_to_fraction_empty_cells_and_types(tmp_path):
    top1s = tmp_path / "top1s.csv"
    top1s.write_text("model,val,v2\nresnet50,76.13,63.33\nvit,81.0,\nodd,50,40\n")
    types = tmp_path / "types.csv"
    types.write_text("model,type,type_description\nresnet50,STANDARD,Standard training\nvit,MORE_DATA,More data\n")
    t = read_testbed(top1s, types)
    assert list(t.columns) == ["model", "type", "type_description", "val", "v2"]
    row = t.set_index("model")
    assert row.loc["resnet50", "val"] == pytest.approx(0.7613) and row.loc["resnet50", "v2"] == pytest.approx(0.6333)
    assert np.isnan(row.loc["vit", "v2"]) and pd.isna(row.loc["odd", "type"])
    assert list(read_testbed(top1s).columns) == ["model", "val", "v2"]
    bad = tmp_path / "bad.csv"
    bad.write_text("model,val\na,150\n")
    with pytest.raises(InputError, match="percentages"):
        read_testbed(bad)
    with pytest.raises(InputError, match="model"):
        (tmp_path / "nomodel.csv").write_text("name,val\na,1\n")
        read_testbed(tmp_path / "nomodel.csv")


def test_pivot_results_from_eval_output():
    df = pd.DataFrame({
        "model": ["a", "a", "b", "b", "c"],
        "dataset": ["val", "v2", "val", "v2", "val"],
        "n_images": [1000, 200, 1000, 200, 1000],
        "n_bad": [0, 10, 0, 0, 0],
        "top1": [0.8, 0.6, 0.7, 0.5, 0.9],
        "top5": [0.95, 0.85, 0.9, 0.8, 0.97],
    })
    with pytest.warns(UserWarning, match="1 model"):
        p = pivot_results(df, "val", "v2")
    assert list(p["model"]) == ["a", "b"]
    a = p.set_index("model").loc["a"]
    assert a["n_id"] == 1000 and a["n_ood"] == 190
    assert (a["ood_acc_low"], a["ood_acc_high"]) == pytest.approx(clopper_pearson(114, 190))
    assert (a["id_acc_low"], a["id_acc_high"]) == pytest.approx(clopper_pearson(800, 1000))
    er = effective_robustness(p, "id_acc", "ood_acc", n_boot=0)
    assert {"id_acc_low", "id_acc_high", "ood_acc_low", "ood_acc_high"} <= set(er.table.columns)
    with pytest.raises(InputError, match="no results for dataset"):
        pivot_results(df, "val", "imagenet-r")
    with pytest.raises(InputError, match="more than one"):
        pivot_results(pd.concat([df, df.iloc[:1]]), "val", "v2")


def test_add_clopper_pearson():
    t = add_clopper_pearson(pd.DataFrame({"val": [0.5, np.nan]}), "val", 10000)
    assert (t.loc[0, "val_low"], t.loc[0, "val_high"]) == pytest.approx(clopper_pearson(5000, 10000))
    assert np.isnan(t.loc[1, "val_low"])


# ------------------------------------------------------------------------------------------- plot

def test_plot_has_logit_axes_band_diagonal_and_error_bars():
    df = table_on_line()
    df.loc[3, "type"] = "MORE_DATA"
    df = add_clopper_pearson(add_clopper_pearson(df, "val", 50000), "v2", 10000)
    er = effective_robustness(df, "val", "v2", n_boot=100)
    grid, lo, hi = band_for_table(er)
    assert grid.shape == lo.shape == hi.shape and (lo <= hi + 1e-12).all()
    fig = robustness_plot(er, band=(grid, lo, hi))
    ax = fig.axes[0]
    assert ax.get_xscale() == "logit" and ax.get_yscale() == "logit"
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("val", "v2")  # the source columns, from the result's attrs
    assert any(isinstance(c, PolyCollection) and c.get_gid() == "fit-band" for c in ax.collections)
    lines = {ln.get_gid(): ln for ln in ax.lines}
    diag = lines["y=x"]
    np.testing.assert_allclose(diag.get_xdata(), diag.get_ydata())
    fit_line_ = lines["fit"]
    np.testing.assert_allclose(fit_line_.get_ydata(), expit(0.9 * logit(fit_line_.get_xdata()) - 0.5), atol=1e-9)
    assert any(t.get_text().endswith("%") for t in ax.get_xticklabels())
    # Clopper–Pearson error bars (LineCollections) and one point group per type
    assert sum(c.__class__.__name__ == "LineCollection" for c in ax.collections) >= 2
    assert {c.get_gid() for c in ax.collections if (c.get_gid() or "").startswith("points")} == \
        {"points:STANDARD", "points:MORE_DATA"}


def test_plot_without_band_or_intervals_and_in_linear_scale():
    df = table_on_line().drop(columns="type")
    er = effective_robustness(df, "val", "v2", scale="linear", n_boot=0)
    fig = robustness_plot(er)
    ax = fig.axes[0]
    assert ax.get_xscale() == "linear"
    assert not any(isinstance(c, PolyCollection) for c in ax.collections)
    assert isinstance(er.fit, LineFit)


# ------------------------------------------------------------------------------------------- published data

def test_testbed_standard_models_logit_fit(reference):
    d = reference / "testbed"
    t = read_testbed(d / "top1s.csv", d / "model_types.csv")
    er = effective_robustness(t, "val", V2, reference="STANDARD", n_boot=200, seed=0, baseline="resnet50")
    f = er.fit
    assert f.n == 87 and er.table["in_reference"].sum() == 87
    assert round(f.slope, 3) == 0.923 and round(f.intercept, 3) == -0.498
    # the reference models scatter around their own line; the standard ResNet-50 is 0 from itself
    assert abs(er.table.loc[er.table["in_reference"], "effective_robustness"].mean()) < 0.01
    assert er.table.set_index("model").loc["resnet50", "relative_robustness"] == 0
    # the probit fit is a different line through the same models
    fp = effective_robustness(t, "val", V2, n_boot=0, scale="probit").fit
    assert fp.n == 87 and fp.slope != pytest.approx(f.slope, abs=1e-3)


@functools.cache
def _labels(path):
    return read_revision_json(path, progress=False).labels


def test_imagenetv2_linear_fit_and_drop_over_64_models(reference):
    sets = ("imagenet-validation-original", "imagenetv2-b-33")
    labels = {n: _labels(reference / "imagenetv2" / f"{n}.json") for n in sets}
    preds = {n: np.load(reference / "imagenetv2" / "predictions" / f"{n}.npz") for n in sets}
    models = sorted(m for m in preds["imagenetv2-b-33"].files if not m.startswith("fv_"))
    assert len(models) == 64
    rows = [{"model": m, "dataset": n, **accuracy_summary(preds[n][m], labels[n], kind="topk")}
            for m in models for n in sets]
    table = pivot_results(pd.DataFrame(rows), *sets)
    assert len(table) == 64 and (table["n_id"] == 50000).all() and (table["n_ood"] == 10000).all()
    er = effective_robustness(table, "id_acc", "ood_acc", scale="linear", n_boot=200, baseline="resnet50")
    f = er.fit
    assert f.n == 64
    assert round(f.slope, 3) == 1.110 and round(f.intercept, 3) == -0.203
    drop = 100 * (er.table["id_acc"] - er.table["ood_acc"])
    assert round(drop.min(), 1) == 10.3 and round(drop.max(), 1) == 13.6
    r50 = er.table.set_index("model").loc["resnet50"]
    assert round(100 * r50["ood_acc"], 2) == 63.33 and r50["relative_robustness"] == 0
