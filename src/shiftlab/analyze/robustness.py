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


@dataclass
class RobustnessResult:
    """One effective-robustness fit.

    ``result``: ``effective_robustness``'s (``result.table``: one row per model with id_acc, ood_acc,
    predicted_ood, effective_robustness with its 95 % interval, relative_robustness, in_reference, type;
    ``result.fit``: the line); ``band``: (grid, low, high) of the bootstrap band; the rest: what was asked for.
    """

    result: rb.EffectiveRobustness
    band: tuple[np.ndarray, np.ndarray, np.ndarray]
    id_set: str
    ood_set: str
    scale: str
    n_boot: int
    seed: int

    @property
    def table(self) -> pd.DataFrame:
        """One row per model (``result.table``): accuracies, effective and relative robustness."""
        return self.result.table

    @property
    def fit(self) -> rb.LineFit:
        """The fitted line (``result.fit``)."""
        return self.result.fit

    def write(self, folder: str | os.PathLike) -> list[Path]:
        """``robustness.csv`` and an HTML report with the plot (``index.html`` + PNG) in ``folder``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.table.to_csv(folder / "robustness.csv", index=False)
        fit = self.result.fit
        rep = Report(f"Effective robustness: {self.ood_set} vs {self.id_set}",
                     f"Least-squares line in {self.scale} space over the reference models; effective robustness = "
                     "shifted accuracy − the line's prediction, with 95% bootstrap intervals.",
                     meta={"slope": round(fit.slope, 4), "intercept": round(fit.intercept, 4), "models in fit": fit.n,
                           "bootstrap": f"{self.n_boot} resamples, seed {self.seed}"})
        sec = rep.section("The fit")
        sec.figure(robustness_plot(self.result, band=self.band, group_col="type" if "type" in self.table else None,
                                   xlabel=f"{self.id_set} top-1", ylabel=f"{self.ood_set} top-1"), "robustness",
                   "Fit with its 95% bootstrap band; the dashed line is y = x.")
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
                     n_boot: int = 1000, seed: int = 0, workspace=None) -> RobustnessResult:
    """Effective robustness of every model of ``accuracy_pairs(...)`` against the line fitted over the
    ``reference`` type(s) (default: STANDARD when types are known, else all models), in ``scale`` space, with a
    seeded bootstrap of ``n_boot`` resamples; relative robustness against ``baseline``."""
    if scale not in SCALES:
        raise InputError(f"scale must be one of {', '.join(SCALES)}, not {scale!r}")
    table, id_col, ood_col = accuracy_pairs(id_set, ood_set, models=models, results=results, types=types,
                                            workspace=workspace)
    if isinstance(reference, list) and len(reference) == 1:
        reference = reference[0]
    er = rb.effective_robustness(table, id_col, ood_col, reference, scale=scale, baseline=baseline, n_boot=n_boot,
                                 seed=seed)
    return RobustnessResult(er, er.band(), id_set, ood_set, scale, n_boot, seed)
