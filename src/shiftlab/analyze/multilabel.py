"""Multi-label accuracy, ImageNet-M and ReaL of a set of models on a labelled manifest (SPECS S2): one row
per model, as ``shiftlab eval --labels`` prints it."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from shiftlab.data.labelfiles import IMAGENET_M_COLUMN, REAL_COLUMN, has_multilabels
from shiftlab.errors import InputError
from shiftlab.metrics.accuracy import topk_indices
from shiftlab.metrics.multilabel import LabelSets, imagenet_m_accuracy, multilabel_accuracy, real_accuracy

SUMMARY_COLUMNS = ["model", "n_images", "top1", "ml_accuracy", "ml_scored", "ml_problematic", "ml_empty",
                   "ml_classes_used", "ml_classes", "imagenet_m_correct", "imagenet_m_size", "real_top1",
                   "real_top5", "real_kept", "real_dropped", "n_bad"]


def multilabel_summary(manifest, predictions: Sequence, *, allow_missing_classes: bool = False) -> pd.DataFrame:
    """One row per model (``ModelPredictions`` aligned to ``manifest``): top-1 on the original labels, and
    whichever of multi-label accuracy, ImageNet-M and ReaL the manifest's label columns allow (NaN otherwise).

    Undecodable images (``valid`` False) are left out of every figure and counted in ``n_bad``.
    """
    t = manifest.table
    n_classes = len(manifest.vocabulary)
    has_ml = has_multilabels(manifest)
    has_m = has_ml and IMAGENET_M_COLUMN in t.columns
    has_real = REAL_COLUMN in t.columns
    if not (has_ml or has_real):
        raise InputError(f"{manifest.name} carries no multi-labels or ReaL labels; attach them with "
                         "--labels tfds:PATH / real:PATH")
    y_all = manifest.labels
    sets = {c: LabelSets.from_lists(t[c].tolist(), n_classes) for c in ("correct_multi_labels", "unclear_multi_labels",
                                                                        REAL_COLUMN) if c in t.columns}
    problematic = t["is_problematic"].tolist() if has_ml else None
    in_m = t[IMAGENET_M_COLUMN].fillna(False).astype(bool).to_numpy() if has_m else None
    rows = []
    for p in predictions:
        valid = np.asarray(p.valid, bool)
        keep = np.flatnonzero(valid)  # undecodable images are not scored by any metric
        every = len(keep) == len(valid)

        def sub(col, keep=keep, every=every):
            return sets[col] if every else sets[col].take(keep)

        k = min(5, p.values.shape[1])
        top = topk_indices(p.values[keep], k, p.score_kind)
        top1, y = top[:, 0].astype(np.int64), y_all[keep]
        scored = y >= 0
        row = {"model": p.model, "n_images": len(manifest), "n_bad": int((~valid).sum()),
               "top1": float((top1[scored] == y[scored]).mean()) if scored.any() else float("nan")}
        if has_ml:
            correct, unclear = sub("correct_multi_labels"), sub("unclear_multi_labels")
            ml = multilabel_accuracy(top1, y, correct, unclear, [problematic[i] for i in keep], n_classes=n_classes,
                                     allow_missing_classes=allow_missing_classes)
            row.update(ml_accuracy=ml.accuracy, ml_scored=ml.n_scored, ml_problematic=ml.n_problematic,
                       ml_empty=ml.n_empty, ml_classes_used=ml.n_classes_used, ml_classes=ml.n_classes)
        if has_m:
            m = imagenet_m_accuracy(top1, correct, unclear, in_m[keep], n_classes=n_classes)
            row.update(imagenet_m_correct=m.correct, imagenet_m_size=m.size)
        if has_real:
            r = real_accuracy(top, sub(REAL_COLUMN), k=5, n_classes=n_classes)
            row.update(real_top1=r.top1, real_top5=r.topk, real_kept=r.n_kept, real_dropped=r.n_dropped)
        rows.append(row)
    df = pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
    for c in ("ml_scored", "ml_problematic", "ml_empty", "ml_classes_used", "ml_classes", "imagenet_m_correct",
              "imagenet_m_size", "real_kept", "real_dropped"):
        df[c] = df[c].astype("Int64")  # counts stay integers where a group of labels is absent (NA)
    return df
