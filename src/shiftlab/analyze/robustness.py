"""The effective-robustness study (SPECS S1.7): accuracies on two test sets → the fitted line, every model's
effective and relative robustness, and a report with the plot. The library function behind
``shiftlab robustness``; the arithmetic is ``shiftlab.metrics.robustness``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from shiftlab.analyze.evaluate import evaluate
from shiftlab.data.formats.testbed import read_testbed
from shiftlab.errors import InputError
from shiftlab.metrics import robustness as rb
from shiftlab.metrics.scales import SCALES
from shiftlab.report import Report, robustness_plot
from shiftlab.report.figures.robustness import zoom_rows

#: a line through fewer reference models than this passes through them (2) or is set by one model's place (3 is
#: the least that leaves a residual to bootstrap); SPECS S1.7 fits on dozens
MIN_REFERENCE = 3
#: without intervals, reference models whose in-distribution accuracies span less than this (a fraction) are
#: degenerate: the slope is then set by measurement noise
MIN_SPREAD = 0.01


def fit_warnings(result: rb.EffectiveRobustness) -> list[str]:
    """Why a fit should not be read at face value, one sentence each (empty when nothing is wrong).

    Fewer than ``MIN_REFERENCE`` reference models, or a degenerate spread: the reference models' in-distribution
    accuracies span less than their typical 95 % interval (the median width, on the fit's scale), or, without
    intervals, less than ``MIN_SPREAD``.
    """
    t = result.table
    ref = t[t["in_reference"]]
    n = len(ref)
    if n < MIN_REFERENCE:
        through = "passes through both exactly" if n == 2 else "is set by so few points"
        return [f"the line is fitted on only {n} reference models, so it {through}: every effective robustness and "
                f"its interval are ~0 by construction and mean nothing; fit on at least {MIN_REFERENCE} models"]
    fwd = lambda a: rb.transform(np.asarray(a, float), result.scale)  # noqa: E731
    spread = float(np.ptp(fwd(ref["id_acc"])))
    if {"id_acc_low", "id_acc_high"} <= set(ref.columns) and ref["id_acc_low"].notna().all():
        noise = float(np.median(fwd(ref["id_acc_high"]) - fwd(ref["id_acc_low"])))
        what = "their typical 95% interval"
    else:
        mid = float(ref["id_acc"].median())
        noise = float(fwd(min(mid + MIN_SPREAD / 2, 1.0)) - fwd(max(mid - MIN_SPREAD / 2, 0.0)))
        what = f"{100 * MIN_SPREAD:g} point"
    if spread < noise:
        lo, hi = ref["id_acc"].min(), ref["id_acc"].max()
        return [f"the {n} reference models' in-distribution accuracies span only {100 * lo:.2f}–{100 * hi:.2f}%, "
                f"less than {what}: the slope is set by measurement noise and the effective robustness means "
                "little; add reference models of other accuracies"]
    return []


@dataclass
class RobustnessResult:
    """One effective-robustness fit.

    ``result``: ``effective_robustness``'s (``result.table``: one row per model with id_acc, ood_acc,
    predicted_ood, effective_robustness with its 95 % interval, relative_robustness, in_reference, type;
    ``result.fit``: the line); ``band``: (grid, low, high) of the bootstrap band; ``warnings``: ``fit_warnings``;
    the rest: what was asked for.
    """

    result: rb.EffectiveRobustness
    band: tuple[np.ndarray, np.ndarray, np.ndarray]
    id_set: str
    ood_set: str
    scale: str
    n_boot: int
    seed: int
    warnings: list[str]  # fit_warnings: why the fit should not be read at face value (empty when none)

    @property
    def table(self) -> pd.DataFrame:
        """One row per model (``result.table``): accuracies, effective and relative robustness."""
        return self.result.table

    @property
    def fit(self) -> rb.LineFit:
        """The fitted line (``result.fit``)."""
        return self.result.fit

    def write(self, folder: str | os.PathLike) -> list[Path]:
        """``robustness.csv`` and an HTML report (``index.html`` + PNGs) in ``folder``: the plot zoomed to the
        models near the reference models' range, every model's numbers in a table, and the plot of all models
        when the zoom leaves some out. A warning of ``warnings`` heads the report and each plot.
        """
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        t = self.table
        t.to_csv(folder / "robustness.csv", index=False)
        fit = self.result.fit
        rep = Report(f"Effective robustness: {self.ood_set} vs {self.id_set}",
                     f"Least-squares line in {self.scale} space over the reference models; effective robustness = "
                     "shifted accuracy − the line's prediction, with 95% bootstrap intervals.",
                     meta={"slope": round(fit.slope, 4), "intercept": round(fit.intercept, 4), "models in fit": fit.n,
                           "bootstrap": f"{self.n_boot} resamples, seed {self.seed}"})
        sec = rep.section("The fit")
        for w in self.warnings:
            sec.note(f"**Warning:** {w}.", level="warning")
        warning = "; ".join(self.warnings) or None
        labels = {"xlabel": f"{self.id_set} top-1", "ylabel": f"{self.ood_set} top-1"}
        group = "type" if "type" in t else None
        shown = zoom_rows(t, self.scale)
        left_out = int((~shown).sum())
        sec.figure(robustness_plot(self.result, band=self.band, group_col=group, zoom=True, legend_loc="outside",
                                   warning=warning, figsize=(9.0, 6.0), **labels), "robustness",
                   f"Shifted against in-distribution top-1 of the {int(shown.sum())} models near the {fit.n} reference "
                   "models' range, with the fitted line and its 95% bootstrap band; the dashed line is y = x; points "
                   "above the fit are effectively robust"
                   + (f". {left_out} models outside that range are in the last figure and the table." if left_out
                      else "."))
        relative = self.result.baseline
        cols = {"model": "model", **({"type": "type"} if group else {}), "id_acc": "id top-1",
                "ood_acc": "shifted top-1", "predicted_ood": "predicted", "effective_robustness":
                "eff. robustness (points)",
                **({"relative_robustness": f"relative to {relative} (points)"} if relative else {}),
                "in_reference": "in fit"}
        shown_t = t.sort_values("effective_robustness", ascending=False)
        pct = lambda v: f"{100 * v:.2f}"  # noqa: E731
        points = lambda v: "—" if v != v else f"{100 * v:+.2f}"  # noqa: E731
        sec.table(shown_t[[*cols, "effective_robustness_low", "effective_robustness_high"]].rename(columns=cols),
                  caption=f"Every model by effective robustness, in percent and points (all columns in "
                          f"robustness.csv); shaded rows are the {fit.n} reference models the line is fitted on.",
                  formats={"id top-1": pct, "shifted top-1": pct, "predicted": pct,
                           "eff. robustness (points)": points,
                           **({f"relative to {relative} (points)": points} if relative else {}),
                           "in fit": lambda v: "yes" if v else ""},
                  intervals={"eff. robustness (points)": ("effective_robustness_low", "effective_robustness_high")},
                  highlight=shown_t["in_reference"].tolist())
        if left_out:
            sec.figure(robustness_plot(self.result, band=self.band, group_col=group, legend_loc="outside",
                                       warning=warning, figsize=(9.0, 6.0), **labels), "robustness-all",
                       f"All {len(t)} models, the same fit over the whole range.")
        return [folder / "robustness.csv", rep.write(folder)]


def accuracy_pairs(id_set: str, ood_set: str, *, models: list[str] | None = None,
                   results: str | os.PathLike | None = None, types: str | os.PathLike | None = None,
                   workspace=None) -> tuple[pd.DataFrame, str, str]:
    """The per-model accuracy table to fit, and its id / ood column names.

    Either ``models`` (specs, evaluated here on the datasets ``id_set`` and ``ood_set``) or ``results``: a CSV
    written by ``shiftlab eval --out`` (``model, dataset, top1, …``; ``id_set`` / ``ood_set`` name datasets
    in it) or imagenet-testbed's ``top1s.csv`` (percent; ``id_set`` / ``ood_set`` name its columns).
    ``types``: ``model,type[,type_description]`` CSV (testbed ``model_types.csv``), joined on ``model``.
    """
    if not id_set or not ood_set:
        raise InputError("give --id and --ood (datasets with --models, or columns of --results)")
    if (models is None) == (results is None):
        raise InputError("give either --models (evaluated here) or --results (a CSV of accuracies)")
    if results is not None:
        results = Path(results)
        if not results.is_file():
            raise InputError(f"{results}: no such file")
        head = pd.read_csv(results, nrows=1)
        if {"model", "dataset", "top1"} <= set(head.columns):
            table, id_col, ood_col = rb.pivot_results(pd.read_csv(results), id_set, ood_set), "id_acc", "ood_acc"
        else:
            table = read_testbed(results, types)
            for col in (id_set, ood_set):
                if col not in table.columns:
                    raise InputError(f"{results}: no column {col!r} "
                                     "(e.g. val, imagenetv2-matched-frequency-format-val)")
            id_col, ood_col = id_set, ood_set
    else:
        if not models:
            raise InputError("--models is empty; give one or more model specs, comma-separated")
        a = evaluate(id_set, models, workspace=workspace).table
        b = evaluate(ood_set, models, workspace=workspace).table
        a["dataset"], b["dataset"] = "id", "ood"
        table, id_col, ood_col = rb.pivot_results(pd.concat([a, b]), "id", "ood"), "id_acc", "ood_acc"
    if types is not None and "type" not in table.columns:
        table = table.merge(pd.read_csv(types)[["model", "type"]], on="model", how="left")
    return table, id_col, ood_col


def robustness_study(id_set: str, ood_set: str, *, models: list[str] | None = None,
                     results: str | os.PathLike | None = None, types: str | os.PathLike | None = None,
                     reference: str | list[str] | None = None, baseline: str | None = None, scale: str = "logit",
                     n_boot: int = 1000, seed: int = 0, strict: bool = False, workspace=None) -> RobustnessResult:
    """Effective robustness of every model of ``accuracy_pairs(...)`` against the line fitted over the
    ``reference`` type(s) (default: STANDARD when types are known, else all models), in ``scale`` space, with a
    seeded bootstrap of ``n_boot`` resamples; relative robustness against ``baseline``.

    A fit that means little (``fit_warnings``: too few reference models, a degenerate spread) is returned with
    its ``warnings``; with ``strict`` it is an ``InputError`` instead.
    """
    if scale not in SCALES:
        raise InputError(f"scale must be one of {', '.join(SCALES)}, not {scale!r}")
    table, id_col, ood_col = accuracy_pairs(id_set, ood_set, models=models, results=results, types=types,
                                            workspace=workspace)
    if isinstance(reference, list) and len(reference) == 1:
        reference = reference[0]
    er = rb.effective_robustness(table, id_col, ood_col, reference, scale=scale, baseline=baseline, n_boot=n_boot,
                                 seed=seed)
    warnings = fit_warnings(er)
    if strict and warnings:
        raise InputError(f"{warnings[0]} (--strict)")
    return RobustnessResult(er, er.band(), id_set, ood_set, scale, n_boot, seed, warnings)
