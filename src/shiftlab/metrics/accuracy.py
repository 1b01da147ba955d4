"""Top-1 / top-5 accuracy with exact (Clopper–Pearson) intervals, and per-class accuracy.

Predictions come either as scores (N, K) — logits or probabilities — or as top-k class indices (N, k)
with column 0 the top-1 (the ImageNetV2 release format). Ties in scores go to the lowest class index.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.special import betaincinv  # = scipy.stats.beta.ppf, bit for bit, without importing scipy.stats

from shiftlab.errors import InputError


def clopper_pearson(k: int, n: int, alpha: float = 0.05) -> tuple[float, float]:
    """Exact two-sided (1 − alpha) interval for a binomial proportion k/n; (nan, nan) when n = 0."""
    if n == 0:
        return float("nan"), float("nan")
    lo = 0.0 if k == 0 else float(betaincinv(k, n - k + 1, alpha / 2))
    hi = 1.0 if k == n else float(betaincinv(k + 1, n - k, 1 - alpha / 2))
    return lo, hi


def topk_indices(values: np.ndarray, k: int, kind: str = "scores") -> np.ndarray:
    """(N, k) class indices, best first. For scores, ties go to the lower index (a stable sort)."""
    values = np.asarray(values)
    if kind == "topk":
        if values.shape[1] < k:
            raise InputError(f"top-{k} needs {k} predictions per image, the file has {values.shape[1]}")
        return values[:, :k]
    if k == 1:
        return np.argmax(values, axis=1)[:, None]  # argmax returns the first maximum
    k = min(k, values.shape[1])
    return np.argsort(-values.astype(np.float64), axis=1, kind="stable")[:, :k]


def topk_correct(values: np.ndarray, labels: np.ndarray, k: int, kind: str = "scores") -> np.ndarray:
    """Boolean (N,): is the label among the top k predictions."""
    idx = topk_indices(values, k, kind)
    return (idx == np.asarray(labels)[:, None]).any(axis=1)


def accuracy_summary(values: np.ndarray, labels: np.ndarray, *, kind: str = "scores",
                     valid: np.ndarray | None = None, alpha: float = 0.05) -> dict:
    """Top-1 and top-5 accuracy over the valid images that have a label (label ≥ 0).

    Returns ``n_images`` (all rows), ``n_bad`` (rows excluded as undecodable), ``n_scored``, ``top1``,
    ``top1_low``, ``top1_high``, ``top5``, ``top5_low``, ``top5_high`` (fractions; top-5 is NaN when
    only fewer than 5 predictions per image exist).
    """
    labels = np.asarray(labels)
    n = len(labels)
    valid = np.ones(n, bool) if valid is None else np.asarray(valid, bool)
    use = valid & (labels >= 0)
    v, y = np.asarray(values)[use], labels[use]
    m = int(use.sum())
    out = {"n_images": n, "n_bad": int((~valid).sum()), "n_scored": m}
    c1 = int(topk_correct(v, y, 1, kind).sum()) if m else 0
    out["top1"] = c1 / m if m else float("nan")
    out["top1_low"], out["top1_high"] = clopper_pearson(c1, m, alpha)
    has5 = kind != "topk" or np.asarray(values).shape[1] >= 5
    if has5 and m:
        c5 = int(topk_correct(v, y, 5, kind).sum())
        out["top5"] = c5 / m
        out["top5_low"], out["top5_high"] = clopper_pearson(c5, m, alpha)
    else:
        out["top5"] = out["top5_low"] = out["top5_high"] = float("nan")
    return out


def per_class_accuracy(values: np.ndarray, labels: np.ndarray, *, kind: str = "scores",
                       valid: np.ndarray | None = None, class_names: list[str] | None = None,
                       alpha: float = 0.05) -> pd.DataFrame:
    """One row per class that has images: ``class, name, n, correct, top1, top1_low, top1_high``."""
    labels = np.asarray(labels)
    valid = np.ones(len(labels), bool) if valid is None else np.asarray(valid, bool)
    use = valid & (labels >= 0)
    correct = topk_correct(np.asarray(values)[use], labels[use], 1, kind)
    df = pd.DataFrame({"class": labels[use], "correct": correct})
    g = df.groupby("class")["correct"].agg(["size", "sum"]).reset_index()
    g.columns = ["class", "n", "correct"]
    ci = [clopper_pearson(int(c), int(n), alpha) for c, n in zip(g["correct"], g["n"])]
    g["top1"] = g["correct"] / g["n"]
    g["top1_low"] = [c[0] for c in ci]
    g["top1_high"] = [c[1] for c in ci]
    if class_names is not None:
        g.insert(1, "name", [class_names[c] for c in g["class"]])
    return g
