"""Effective and relative robustness (imagenet-testbed, Taori et al. 2020; SPECS S1.7).

A least-squares line is fitted through (t(in-distribution accuracy), t(shifted accuracy)) over a
reference group of models (by default the standard-trained ones), where t is the logit
t(a) = ln(a / (1 − a)) (probit and linear are available too). The *effective robustness* of a model is
its shifted accuracy minus the accuracy that the line predicts from its in-distribution accuracy,
t⁻¹(slope · t(id) + intercept); the *relative robustness* is its shifted accuracy minus that of a named
baseline model. Both are in accuracy points, as fractions (0.05 = 5 points).

Uncertainty comes from a seeded bootstrap over the reference models (resample models with replacement,
refit the line): a pointwise band around the line and a per-model interval of the effective robustness.

Accuracies are fractions in [0, 1] throughout. Before transforming, they are clipped to
[``EPS``, 1 − ``EPS``] (``EPS`` = 1e-6) so that 0 % and 100 % map to finite values instead of ±inf.

Typical use::

    table = read_testbed("top1s.csv", "model_types.csv")     # shiftlab.data.formats.testbed
    er = effective_robustness(table, "val", "imagenetv2-matched-frequency-format-val", reference="STANDARD")
    er.fit, er.table                            # LineFit(slope, intercept, scale, n); one row per model
    grid, lo, hi = er.band()                    # or bootstrap_band(...) directly
    fig = robustness_plot(er, band=(grid, lo, hi))  # shiftlab.report.figures.robustness
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from shiftlab.errors import InputError
from shiftlab.metrics.accuracy import clopper_pearson
from shiftlab.metrics.scales import EPS, SCALES, check_scale, inverse_transform, transform

__all__ = [
    "EPS",
    "SCALES",
    "LineFit",
    "add_clopper_pearson",
    "band_for_table",
    "bootstrap_band",
    "bootstrap_fits",
    "effective_robustness",
    "fit_line",
    "inverse_transform",
    "pivot_results",
    "transform",
]

# ------------------------------------------------------------------------------------------- fitting

@dataclass(frozen=True)
class LineFit:
    """A least-squares line ``t(ood) = slope · t(id) + intercept`` in the space of ``scale``.

    Attributes
    ----------
    slope, intercept : float
    scale : {"logit", "probit", "linear"}
    n : int
        Number of models the line was fitted on.
    """

    slope: float
    intercept: float
    scale: str
    n: int

    def predict(self, id_acc) -> np.ndarray:
        """Predicted shifted accuracy t⁻¹(slope · t(id_acc) + intercept), as fractions."""
        return inverse_transform(self.slope * transform(id_acc, self.scale) + self.intercept, self.scale)

    def to_dict(self) -> dict:
        """Plain dict (JSON-ready)."""
        return asdict(self)


def _pairs(id_acc, ood_acc) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(id_acc, dtype=float).ravel(), np.asarray(ood_acc, dtype=float).ravel()
    if x.shape != y.shape:
        raise InputError(f"id and ood accuracies differ in length ({x.size} vs {y.size})")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise InputError("accuracies contain NaN or inf; drop models that were not evaluated first")
    lo, hi = min(x.min(initial=0), y.min(initial=0)), max(x.max(initial=1), y.max(initial=1))
    if lo < 0 or hi > 1:
        raise InputError(f"accuracies must be fractions in [0, 1] (found {lo:g} to {hi:g}); divide percentages "
                         "by 100")
    return x, y


def fit_line(id_acc, ood_acc, scale: str = "logit") -> LineFit:
    """Least-squares line through (t(id_acc), t(ood_acc)).

    Parameters
    ----------
    id_acc, ood_acc : array-like of shape (n_models,)
        In-distribution and shifted accuracies, as fractions.
    scale : {"logit", "probit", "linear"}, default="logit"

    Returns
    -------
    fit : LineFit

    Raises
    ------
    InputError
        Fewer than 2 models, NaN / out-of-range accuracies, or all id accuracies equal (no line).
    """
    check_scale(scale)
    x, y = _pairs(id_acc, ood_acc)
    if x.size < 2:
        raise InputError(f"a line needs at least 2 models, got {x.size}")
    tx, ty = transform(x, scale), transform(y, scale)
    if np.ptp(tx) == 0:
        raise InputError("all reference models have the same in-distribution accuracy; no line can be fitted")
    design = np.column_stack([tx, np.ones_like(tx)])
    (slope, intercept), *_ = np.linalg.lstsq(design, ty, rcond=None)
    return LineFit(float(slope), float(intercept), scale, int(x.size))


def bootstrap_fits(id_acc, ood_acc, scale: str = "logit", n_boot: int = 1000, seed: int = 0) -> np.ndarray:
    """Slopes and intercepts of lines refitted on bootstrap resamples of the models.

    Parameters
    ----------
    id_acc, ood_acc : array-like of shape (n_models,)
    scale : {"logit", "probit", "linear"}, default="logit"
    n_boot : int, default=1000
        Number of resamples (each draws ``n_models`` models with replacement).
    seed : int, default=0
        Seed of the ``numpy.random.Generator`` (``default_rng(seed)``): same seed ⇒ same resamples.

    Returns
    -------
    fits : ndarray of shape (n_boot, 2)
        Columns slope, intercept. A resample whose models all share one id accuracy has no line: its
        row is NaN (ignored by the percentiles downstream).
    """
    check_scale(scale)
    x, y = _pairs(id_acc, ood_acc)
    if x.size < 2:
        raise InputError(f"a bootstrap needs at least 2 models, got {x.size}")
    if n_boot < 1:
        raise InputError(f"n_boot must be at least 1, got {n_boot}")
    tx, ty = transform(x, scale), transform(y, scale)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, x.size, size=(n_boot, x.size))
    bx, by = tx[idx], ty[idx]
    mx, my = bx.mean(axis=1, keepdims=True), by.mean(axis=1, keepdims=True)
    sxx = ((bx - mx) ** 2).sum(axis=1)
    sxy = ((bx - mx) * (by - my)).sum(axis=1)
    ok = sxx > 1e-12 * max(1.0, float(np.ptp(tx)) ** 2)
    slope = np.full(n_boot, np.nan)
    slope[ok] = sxy[ok] / sxx[ok]
    intercept = my[:, 0] - slope * mx[:, 0]
    return np.column_stack([slope, intercept])


def _percentiles(samples: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    if not 0 < level < 1:
        raise InputError(f"level must be in (0, 1), got {level}")
    q = 100 * (1 - level) / 2
    if np.isnan(samples).all():
        nan = np.full(samples.shape[1:], np.nan)
        return nan, nan.copy()
    return np.nanpercentile(samples, q, axis=0), np.nanpercentile(samples, 100 - q, axis=0)


def default_grid(id_acc, scale: str = "logit", n: int = 200) -> np.ndarray:
    """``n`` id accuracies evenly spaced in ``scale`` space over the range of ``id_acc`` (plus 5 % each side)."""
    t = transform(np.asarray(id_acc, dtype=float), scale)
    lo, hi = float(np.nanmin(t)), float(np.nanmax(t))
    pad = 0.05 * (hi - lo)
    g = inverse_transform(np.linspace(lo - pad, hi + pad, n), scale)
    return np.clip(g, 0.0, 1.0)


def bootstrap_band(id_acc, ood_acc, scale: str = "logit", grid=None, n_boot: int = 1000, seed: int = 0,
                   level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Pointwise bootstrap confidence band of the fitted line.

    Parameters
    ----------
    id_acc, ood_acc : array-like of shape (n_models,)
        Accuracies (fractions) of the models the line is fitted on.
    scale : {"logit", "probit", "linear"}, default="logit"
    grid : array-like of shape (n_points,), optional
        In-distribution accuracies (fractions) at which to evaluate the band; default
        :func:`default_grid` over ``id_acc``.
    n_boot : int, default=1000
    seed : int, default=0
        Seed of the resampling (see :func:`bootstrap_fits`).
    level : float, default=0.95
        Coverage: the band is the (1 − level)/2 and (1 + level)/2 percentiles of the refitted lines.

    Returns
    -------
    y_low, y_high : ndarray of shape (n_points,)
        Band limits as accuracies (fractions), at the points of ``grid``.
    """
    grid = default_grid(id_acc, scale) if grid is None else np.asarray(grid, dtype=float)
    fits = bootstrap_fits(id_acc, ood_acc, scale, n_boot, seed)
    tg = transform(grid, scale)
    preds = fits[:, :1] * tg[None, :] + fits[:, 1:]
    lo, hi = _percentiles(preds, level)
    return inverse_transform(lo, scale), inverse_transform(hi, scale)


# ------------------------------------------------------------------------------------------- effective robustness

def interval_columns(table: pd.DataFrame, col: str) -> tuple[str, str] | None:
    """``(<col>_low, <col>_high)`` when ``table`` has both columns, else None."""
    lo, hi = f"{col}_low", f"{col}_high"
    return (lo, hi) if lo in table.columns and hi in table.columns else None


def _reference_mask(table: pd.DataFrame, reference, group_col: str | None) -> np.ndarray:
    if reference is None:
        if group_col is not None and group_col in table.columns:
            reference = "STANDARD"
        else:
            return np.ones(len(table), bool)
    if isinstance(reference, str) or (isinstance(reference, Sequence) and reference
                                       and all(isinstance(r, str) for r in reference)):
        groups = [reference] if isinstance(reference, str) else list(reference)
        if group_col is None or group_col not in table.columns:
            raise InputError(f"reference group(s) {', '.join(groups)} need a group column; {group_col!r} is not "
                             "in the table (give --types / a model type table, or a boolean mask)")
        return table[group_col].isin(groups).to_numpy()
    mask = np.asarray(reference.reindex(table.index) if isinstance(reference, pd.Series) else reference)
    if mask.dtype != bool or mask.shape != (len(table),):
        raise InputError(f"reference must be a group name, a list of names or a boolean mask of length "
                         f"{len(table)}")
    return mask


@dataclass
class EffectiveRobustness:
    """What :func:`effective_robustness` found: the per-model ``table``, the ``fit`` over the reference
    models, and the parameters: ``scale``, ``n_boot``, ``seed``, ``level``, ``baseline``, ``id_col`` /
    ``ood_col`` (the input's columns), ``n_missing`` (rows left out for lack of an accuracy) and
    ``n_boot_degenerate`` (bootstrap resamples without a line)."""

    table: pd.DataFrame
    fit: LineFit
    scale: str
    n_boot: int
    seed: int
    level: float
    baseline: str | None
    id_col: str
    ood_col: str
    n_missing: int
    n_boot_degenerate: int

    def band(self, grid=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``band_for_table(self, grid)``: the fit's bootstrap band."""
        return band_for_table(self, grid)


def effective_robustness(
    table: pd.DataFrame,
    id_col: str,
    ood_col: str,
    reference=None,
    *,
    model_col: str = "model",
    group_col: str | None = "type",
    scale: str = "logit",
    baseline: str | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> EffectiveRobustness:
    """Effective and relative robustness of every model in ``table``.

    Parameters
    ----------
    table : DataFrame
        One row per model, with accuracies as fractions (e.g. from :func:`shiftlab.data.formats.testbed.read_testbed` or
        :func:`pivot_results`). Interval columns ``{id_col}_low/_high`` and ``{ood_col}_low/_high`` are
        carried over when present.
    id_col, ood_col : str
        Columns of the in-distribution and shifted accuracies.
    reference : str, list of str, boolean array-like or None
        The models the line is fitted on: a group name (or names) matched against ``group_col``, or a
        boolean mask over the rows of ``table``. Default: the ``"STANDARD"`` group when ``group_col`` is
        in the table, otherwise all models.
    model_col : str, default="model"
    group_col : str or None, default="type"
        Column of the model type (carried over to the output when present).
    scale : {"logit", "probit", "linear"}, default="logit"
    baseline : str, optional
        Model name for the relative robustness; without it that column is NaN.
    n_boot : int, default=1000
        Bootstrap resamples of the reference models (0 skips the bootstrap: interval columns are NaN).
    seed : int, default=0
    level : float, default=0.95

    Returns
    -------
    result : EffectiveRobustness
        ``result.table``: one row per model that has both accuracies (in the input order): ``model``,
        ``type`` (when present), ``id_acc``, ``ood_acc`` (and their ``_low``/``_high`` intervals when present),
        ``in_reference``, ``predicted_ood``, ``effective_robustness``, ``effective_robustness_low``,
        ``effective_robustness_high``, ``relative_robustness``; beside it the ``fit`` (:class:`LineFit`) and
        what was asked for (see :class:`EffectiveRobustness`).

    Raises
    ------
    InputError
        Missing columns, fewer than 2 reference models with both accuracies, an unknown baseline.
    """
    check_scale(scale)
    missing = [c for c in (model_col, id_col, ood_col) if c not in table.columns]
    if missing:
        raise InputError(f"column(s) {', '.join(map(repr, missing))} not in the table; it has "
                         f"{', '.join(map(str, table.columns))}")
    table = table.reset_index(drop=True)
    ref = _reference_mask(table, reference, group_col)
    id_acc = pd.to_numeric(table[id_col], errors="coerce").to_numpy(float)
    ood_acc = pd.to_numeric(table[ood_col], errors="coerce").to_numpy(float)
    have = np.isfinite(id_acc) & np.isfinite(ood_acc)
    use_ref = ref & have
    if use_ref.sum() < 2:
        raise InputError(f"only {int(use_ref.sum())} reference model(s) have both {id_col!r} and {ood_col!r}; "
                         "a line needs at least 2")
    fit = fit_line(id_acc[use_ref], ood_acc[use_ref], scale)

    out = pd.DataFrame({"model": table[model_col].astype(str)})
    if group_col is not None and group_col in table.columns:
        out["type"] = table[group_col]
    for name, col in (("id_acc", id_col), ("ood_acc", ood_col)):
        out[name] = pd.to_numeric(table[col], errors="coerce").astype(float)
        iv = interval_columns(table, col)
        if iv:
            out[f"{name}_low"] = pd.to_numeric(table[iv[0]], errors="coerce").astype(float)
            out[f"{name}_high"] = pd.to_numeric(table[iv[1]], errors="coerce").astype(float)
    out["in_reference"] = use_ref
    out = out[have].reset_index(drop=True)
    x, y = out["id_acc"].to_numpy(float), out["ood_acc"].to_numpy(float)
    _pairs(x, y)  # range check of everything reported, not only the reference
    pred = fit.predict(x)
    out["predicted_ood"] = pred
    out["effective_robustness"] = y - pred
    n_degenerate = 0
    if n_boot > 0:
        fits = bootstrap_fits(id_acc[use_ref], ood_acc[use_ref], scale, n_boot, seed)
        n_degenerate = int(np.isnan(fits[:, 0]).sum())
        tx = transform(x, scale)
        boot_pred = inverse_transform(fits[:, :1] * tx[None, :] + fits[:, 1:], scale)
        lo, hi = _percentiles(y[None, :] - boot_pred, level)
        out["effective_robustness_low"], out["effective_robustness_high"] = lo, hi
    else:
        out["effective_robustness_low"] = out["effective_robustness_high"] = np.nan
    if baseline is None:
        out["relative_robustness"] = np.nan
    else:
        hit = out.loc[out["model"] == str(baseline), "ood_acc"]
        if hit.empty:
            raise InputError(f"baseline model {baseline!r} is not in the table or lacks {id_col!r} / {ood_col!r}")
        if len(hit) > 1:
            raise InputError(f"baseline model {baseline!r} appears {len(hit)} times in the table")
        out["relative_robustness"] = y - float(hit.iloc[0])
    return EffectiveRobustness(out, fit, scale=scale, n_boot=int(n_boot), seed=seed, level=level, baseline=baseline,
                               id_col=id_col, ood_col=ood_col, n_missing=int((~have).sum()),
                               n_boot_degenerate=n_degenerate)


def band_for_table(result: EffectiveRobustness, grid=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The bootstrap band of an :func:`effective_robustness` result, with the same seed and resamples.

    Parameters
    ----------
    result : EffectiveRobustness
    grid : array-like, optional
        Id accuracies; default: :func:`default_grid` over all models of ``result``.

    Returns
    -------
    grid, y_low, y_high : ndarray
        Ready for ``robustness_plot(result, band=(grid, y_low, y_high))``.
    """
    if not isinstance(result, EffectiveRobustness):
        raise InputError("band_for_table needs the result of effective_robustness")
    t = result.table
    ref = t[t["in_reference"]]
    grid = default_grid(t["id_acc"], result.scale) if grid is None else np.asarray(grid, dtype=float)
    lo, hi = bootstrap_band(ref["id_acc"], ref["ood_acc"], result.scale, grid, n_boot=max(result.n_boot, 1),
                            seed=result.seed, level=result.level)
    return grid, lo, hi


# ------------------------------------------------------------------------------------------- tables

def add_clopper_pearson(table: pd.DataFrame, col: str, n: int, alpha: float = 0.05) -> pd.DataFrame:
    """Add ``{col}_low`` / ``{col}_high``: Clopper–Pearson intervals of accuracies measured on ``n`` images.

    For tables that give accuracies but not counts (the testbed: ``val`` has 50,000 images,
    ImageNetV2 10,000); the count of correct images is taken as ``round(acc · n)``.

    Returns
    -------
    table : DataFrame
        A copy with the two columns added.
    """
    if col not in table.columns:
        raise InputError(f"column {col!r} not in the table")
    out = table.copy()
    acc = pd.to_numeric(out[col], errors="coerce").to_numpy(float)
    ci = [clopper_pearson(int(round(a * n)), int(n), alpha) if np.isfinite(a) else (np.nan, np.nan) for a in acc]
    out[f"{col}_low"] = [c[0] for c in ci]
    out[f"{col}_high"] = [c[1] for c in ci]
    return out


def pivot_results(df: pd.DataFrame, id_dataset: str, ood_dataset: str, *, metric: str = "top1",
                  alpha: float = 0.05) -> pd.DataFrame:
    """One row per model from a long results table (shiftlab ``eval`` output: ``model, dataset, n_images, top1 …``).

    Parameters
    ----------
    df : DataFrame
        Long table with columns ``model``, ``dataset`` and ``metric`` (fractions); ``n_images`` and
        ``n_bad`` give the number of scored images (``n_images − n_bad``; ``n_scored`` wins when present).
    id_dataset, ood_dataset : str
        Values of ``dataset`` for the in-distribution and the shifted set.
    metric : str, default="top1"
    alpha : float, default=0.05
        Clopper–Pearson intervals at level 1 − alpha, from k = round(acc · n) of n scored images. Without
        image counts, existing ``{metric}_low`` / ``{metric}_high`` columns are used, else NaN.

    Returns
    -------
    table : DataFrame
        ``model, id_acc, id_acc_low, id_acc_high, n_id, ood_acc, ood_acc_low, ood_acc_high, n_ood`` for the
        models evaluated on both sets (others are dropped with a warning).
    """
    need = [c for c in ("model", "dataset", metric) if c not in df.columns]
    if need:
        raise InputError(f"results table lacks column(s) {', '.join(need)}; it has {', '.join(map(str, df.columns))}")
    parts = []
    for name, ds in (("id_acc", id_dataset), ("ood_acc", ood_dataset)):
        sub = df[df["dataset"].astype(str) == str(ds)]
        if sub.empty:
            have = ", ".join(sorted(map(str, df["dataset"].unique())))
            raise InputError(f"no results for dataset {ds!r}; the table has {have}")
        if sub["model"].duplicated().any():
            dup = sub.loc[sub["model"].duplicated(), "model"].iloc[0]
            raise InputError(f"model {dup!r} has more than one result on {ds!r}")
        acc = pd.to_numeric(sub[metric], errors="coerce").to_numpy(float)
        if "n_scored" in sub.columns:
            n = pd.to_numeric(sub["n_scored"], errors="coerce").to_numpy(float)
        elif "n_images" in sub.columns:
            n = pd.to_numeric(sub["n_images"], errors="coerce").to_numpy(float)
            if "n_bad" in sub.columns:
                n = n - pd.to_numeric(sub["n_bad"], errors="coerce").fillna(0).to_numpy(float)
        else:
            n = np.full(len(sub), np.nan)
        if np.isfinite(n).any():
            ci = [clopper_pearson(int(round(a * m)), int(m), alpha) if np.isfinite(a) and np.isfinite(m) and m > 0
                  else (np.nan, np.nan) for a, m in zip(acc, n)]
            lo, hi = np.array([c[0] for c in ci]), np.array([c[1] for c in ci])
        elif f"{metric}_low" in sub.columns and f"{metric}_high" in sub.columns:
            lo = pd.to_numeric(sub[f"{metric}_low"], errors="coerce").to_numpy(float)
            hi = pd.to_numeric(sub[f"{metric}_high"], errors="coerce").to_numpy(float)
        else:
            lo = hi = np.full(len(sub), np.nan)
        short = name.split("_")[0]
        parts.append(pd.DataFrame({"model": sub["model"].astype(str).to_numpy(), name: acc, f"{name}_low": lo,
                                   f"{name}_high": hi, f"n_{short}": n}))
    out = parts[0].merge(parts[1], on="model", how="outer", sort=False)
    both = out["id_acc"].notna() & out["ood_acc"].notna()
    if not both.all():
        warnings.warn(f"{int((~both).sum())} model(s) without results on both {id_dataset!r} and "
                      f"{ood_dataset!r} left out", stacklevel=2)
    out = out[both].reset_index(drop=True)
    return out[["model", "id_acc", "id_acc_low", "id_acc_high", "n_id", "ood_acc", "ood_acc_low", "ood_acc_high",
                "n_ood"]]
