"""The automatic pre-categorisation of top-1 errors, in the order of Peychev et al. 2023 (package docstring)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from shiftlab.analyze.mistakes.records import (
    FINE_GRAINED,
    FINE_GRAINED_OOV,
    MAJOR,
    NOT_A_MISTAKE,
    SPURIOUS,
    SUGGESTED_SEVERITY,
)
from shiftlab.data.hierarchy import DEFAULT_MAX_HOPS, Hierarchy
from shiftlab.errors import InputError
from shiftlab.metrics.multilabel import problematic_mask
from shiftlab.metrics.neighbors import knn


# --- automatic pre-categorisation --------------------------------------------------------------------------
def nearest_training_labels(features: np.ndarray, train_features: np.ndarray, train_labels: np.ndarray,
                            k: int = 10) -> np.ndarray:
    """(N, k) labels of each image's k nearest training images by cosine similarity of penultimate features.

    features (N, d), train_features (M, d), train_labels (M,); k is capped at M. Cosine rather than L2 so that
    images with large activations do not all share the same few neighbours: on unit vectors the squared L2
    distance is 2 − 2·cosine, so the exact chunked kNN (``shiftlab.metrics.neighbors.knn``) on L2-normalised
    rows ranks by cosine (ties: the lower training row).
    """
    x = _unit_rows(features)
    t = _unit_rows(train_features)
    if x.ndim != 2 or t.ndim != 2 or x.shape[1] != t.shape[1]:
        raise InputError(f"features {x.shape} and training features {t.shape} do not have the same width")
    _, nn = knn(x, t, k)
    return np.asarray(train_labels, np.int64)[nn]


def _unit_rows(a: np.ndarray) -> np.ndarray:
    """float32 rows scaled to unit L2 norm (NaN → 0; an all-zero row stays zero)."""
    a = np.nan_to_num(np.asarray(a, dtype=np.float32))
    if a.ndim != 2:
        return a
    norms = np.linalg.norm(a, axis=1, keepdims=True)
    return a / np.where(norms > 0, norms, 1)


def precategorize(ids: Sequence[str], labels: np.ndarray, top1: np.ndarray, *,
                  correct: Sequence | None = None, unclear: Sequence | None = None,
                  hierarchy: Hierarchy | None = None, max_hops: int = DEFAULT_MAX_HOPS,
                  neighbour_labels: np.ndarray | None = None, min_neighbours: int = 2,
                  cues: Mapping[str, Iterable[int]] | None = None, class_names: Sequence[str] | None = None,
                  is_problematic: Sequence | None = None, valid: np.ndarray | None = None) -> pd.DataFrame:
    """Suggest a mistake category for every top-1 error, with the evidence of each check (module docstring).

    Parameters
    ----------
    ids, labels, top1 : (N,)
        Image ids, labels (−1 = unknown: not scored) and top-1 predictions.
    correct, unclear : N lists of class indices, optional
        Multi-labels (None for an unlabelled row); without them check 1 is skipped.
    hierarchy : Hierarchy, optional
        For check 2; ``max_hops`` bounds how far above both classes the shared superclass may be.
    neighbour_labels : (N, k) int, optional
        Labels of each image's nearest training images (``nearest_training_labels``); check 3 needs at
        least ``min_neighbours`` of them to be of the predicted class (one could be a stray).
    cues : dict id → classes whose spurious cue the image shows, optional
        Check 4 where known; ids absent from the dict are unknown.
    class_names : list of str, optional
    is_problematic : (N,) bool, optional
        Problematic images (no usable label) are dropped, as multi-label accuracy drops them.
    valid : (N,) bool, optional
        False for undecodable images (never scored).

    Returns
    -------
    DataFrame, one row per error: ``id, label, label_name, prediction, prediction_name, category, severity
    (suggested), evidence`` and the checks' findings ``multilabel_ok, superclass, neighbours_of_prediction,
    neighbours_of_label, cue_present`` (None where a check could not run).
    """
    ids = np.asarray([str(i) for i in ids], dtype=object)
    y = np.asarray(labels, np.int64)
    t = np.asarray(top1, np.int64)
    n = len(ids)
    if len(y) != n or len(t) != n:
        raise InputError(f"{n} ids, {len(y)} labels and {len(t)} predictions; give one of each per image")
    ok = np.ones(n, bool) if valid is None else np.asarray(valid, bool)
    if is_problematic is not None:
        ok = ok & ~problematic_mask(is_problematic)
    err = np.flatnonzero(ok & (y >= 0) & (t >= 0) & (t != y))
    if neighbour_labels is not None and len(neighbour_labels) != n:
        raise InputError(f"{len(neighbour_labels)} rows of neighbour labels for {n} images")
    name = (lambda k: class_names[k]) if class_names is not None else str
    rows = []
    for i in err:
        a, p = int(y[i]), int(t[i])
        steps, cat = [], None
        ml_ok = sup = n_pred = n_lab = cue = None
        if correct is not None:
            c = correct[i]
            u = unclear[i] if unclear is not None else []
            if c is not None and not (isinstance(c, float) and c != c):
                accepted = sorted({int(x) for x in c} | {int(x) for x in (u if u is not None else [])})
                ml_ok = p in accepted
                shown = "{" + ", ".join(name(k) for k in accepted) + "}"
                if ml_ok:
                    cat = NOT_A_MISTAKE
                    steps.append(f"'{name(p)}' is among the image's multi-labels {shown}")
                else:
                    steps.append(f"'{name(p)}' is not among the multi-labels {shown}")
        if cat is None and hierarchy is not None:
            node = hierarchy.shared_superclass(a, p, max_hops) if max(a, p) < len(hierarchy) else None
            sup = hierarchy.name(node) if node else ""
            if node:
                cat = FINE_GRAINED
                steps.append(f"'{name(a)}' and '{name(p)}' share the superclass '{sup}'")
            else:
                steps.append(f"no superclass within {max_hops} levels joins '{name(a)}' and '{name(p)}'")
        if cat is None and neighbour_labels is not None:
            nb = np.asarray(neighbour_labels[i])
            n_pred, n_lab = int((nb == p).sum()), int((nb == a).sum())
            if n_pred >= min_neighbours:
                cat = FINE_GRAINED_OOV
                steps.append(f"{n_pred} of its {len(nb)} nearest training images are '{name(p)}' "
                             f"({n_lab} '{name(a)}')")
            else:
                steps.append(f"{n_pred} of its {len(nb)} nearest training images are '{name(p)}'")
        if cat is None and cues is not None and str(ids[i]) in cues:
            shown_cues = {int(k) for k in cues[str(ids[i])]}
            cue = p in shown_cues
            if cue:
                cat = SPURIOUS
                steps.append(f"the spurious cue of '{name(p)}' is present")
            else:
                steps.append(f"no spurious cue of '{name(p)}' is present")
        if cat is None:
            cat = MAJOR
            steps.append("no explanation found: candidate Major")
        rows.append({"id": ids[i], "label": a, "label_name": name(a), "prediction": p, "prediction_name": name(p),
                     "category": cat, "severity": SUGGESTED_SEVERITY[cat], "evidence": "; ".join(steps),
                     "multilabel_ok": ml_ok, "superclass": sup, "neighbours_of_prediction": n_pred,
                     "neighbours_of_label": n_lab, "cue_present": cue})
    cols = ["id", "label", "label_name", "prediction", "prediction_name", "category", "severity", "evidence",
            "multilabel_ok", "superclass", "neighbours_of_prediction", "neighbours_of_label", "cue_present"]
    return pd.DataFrame(rows, columns=cols)
