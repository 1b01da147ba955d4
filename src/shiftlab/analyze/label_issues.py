"""Which given labels are most likely wrong: confident learning (cleanlab) on out-of-sample probabilities.

The probabilities must not come from models trained on the images being checked (a model that memorised a
wrong label agrees with it). The zoo models are trained on ``world-train`` only, so their predictions on
``world-test`` are out of sample; their mean softmax is the ensemble's estimate of p(class | image).

``rank_label_issues`` ranks *every* image: the images that ``cleanlab.filter.find_label_issues`` flags come
first, then the rest; within each group by cleanlab's label-quality score (self-confidence: the probability
given to the image's label), lowest first. A reviewer works down the list and stops where the labels turn
out right.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.special import softmax

from shiftlab.errors import InputError
from shiftlab.predict.engine import predict

ISSUE_COLUMNS = ["rank", "id", "given_label", "given_name", "suggested_label", "suggested_name", "label_quality",
                 "suggested_probability", "is_label_issue"]


def ensemble_probabilities(predictions: Sequence) -> np.ndarray:
    """(N, K) mean of the models' class probabilities (softmax of logits; probabilities as given).

    Top-k index predictions carry no probabilities and are refused. Rows that a model could not decode
    (NaN) are averaged over the models that could; a row no model decoded stays NaN.
    """
    if not predictions:
        raise InputError("label issues need the predictions of at least one model")
    total, count = None, None
    for p in predictions:
        if p.kind == "topk":
            raise InputError(f"{p.model}: top-k class indices carry no probabilities; label issues need logits or "
                             "probabilities")
        v = np.asarray(p.values, np.float64)
        prob = v if p.kind == "probabilities" else softmax(np.nan_to_num(v, nan=0.0), axis=1)
        ok = np.asarray(p.valid, bool) & np.isfinite(v).all(axis=1)
        if total is None:
            total, count = np.zeros_like(prob), np.zeros(len(prob))
        if prob.shape != total.shape:
            raise InputError(f"{p.model}: predictions of shape {prob.shape}, the others {total.shape}")
        total[ok] += prob[ok]
        count[ok] += 1
    with np.errstate(invalid="ignore", divide="ignore"):
        return total / count[:, None]


def rank_label_issues(labels: np.ndarray, pred_probs: np.ndarray, ids: Sequence[str] | None = None, *,
                      class_names: Sequence[str] | None = None,
                      filter_by: str = "prune_by_noise_rate") -> pd.DataFrame:
    """Rank images by how likely their given label is wrong.

    Parameters
    ----------
    labels : (N,) int
        Given labels; −1 (unknown) rows are left out.
    pred_probs : (N, K) float
        Out-of-sample class probabilities (rows sum to 1); rows with NaN are left out.
    ids : (N,) str, optional
    class_names : list of str, optional
    filter_by : str, default "prune_by_noise_rate"
        cleanlab's rule for flagging issues (``cleanlab.filter.find_label_issues``).

    Returns
    -------
    DataFrame ``rank`` (1 = most likely wrong), ``id, given_label, given_name, suggested_label`` (the
    ensemble's argmax), ``suggested_name, label_quality`` (cleanlab's self-confidence score, in [0, 1]),
    ``suggested_probability, is_label_issue`` (flagged by cleanlab), sorted by rank.
    """
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    y = np.asarray(labels, np.int64)
    P = np.asarray(pred_probs, np.float64)
    if P.ndim != 2 or len(P) != len(y):
        raise InputError(f"{len(y)} labels but probabilities of shape {P.shape}; give one row per image")
    ids = np.asarray([str(i) for i in (ids if ids is not None else range(len(y)))], dtype=object)
    use = np.flatnonzero((y >= 0) & np.isfinite(P).all(axis=1))
    if len(use) == 0:
        raise InputError("no image has both a label and probabilities")
    if y[use].max() >= P.shape[1]:
        raise InputError(f"label {int(y[use].max())} is outside the {P.shape[1]} classes of the probabilities")
    Pu = P[use] / P[use].sum(axis=1, keepdims=True)  # cleanlab checks that rows sum to 1 exactly enough
    yu = y[use]
    # cleanlab estimates a class-by-class noise matrix: classes without any given label have no row in it
    present = np.unique(yu)
    if len(present) < 2:
        raise InputError("label issues need images of at least two classes")
    flagged = find_label_issues(yu, Pu, filter_by=filter_by)
    quality = get_label_quality_scores(yu, Pu, method="self_confidence")
    suggested = Pu.argmax(axis=1)
    name = (lambda k: class_names[k]) if class_names is not None else str
    df = pd.DataFrame({"id": ids[use], "given_label": yu, "given_name": [name(int(k)) for k in yu],
                       "suggested_label": suggested, "suggested_name": [name(int(k)) for k in suggested],
                       "label_quality": quality, "suggested_probability": Pu[np.arange(len(use)), suggested],
                       "is_label_issue": flagged})
    df = df.sort_values(["is_label_issue", "label_quality", "id"], ascending=[False, True, True],
                        kind="stable").reset_index(drop=True)
    df.insert(0, "rank", np.arange(1, len(df) + 1))
    return df[ISSUE_COLUMNS]


def label_issues(dataset, models: Sequence[str], *, workspace=None, device: str = "auto", batch_size: int = 64,
                 progress: bool = True) -> pd.DataFrame:
    """``rank_label_issues`` of a manifest with the mean probabilities of ``models`` (spec strings).

    The models must not have been trained on ``dataset``'s images (see the module docstring).
    """
    preds = predict(dataset, list(models), workspace=workspace, device=device, batch_size=batch_size,
                    progress=progress)
    P = ensemble_probabilities(preds)
    if P.shape[1] != len(dataset.vocabulary):
        raise InputError(f"the models predict {P.shape[1]} classes but {dataset.name} has "
                         f"{len(dataset.vocabulary)} ({dataset.vocabulary.name})")
    return rank_label_issues(dataset.labels, P, dataset.ids, class_names=dataset.vocabulary.names)


def recall_at(ranking: pd.DataFrame, truth_ids: Sequence[str], n: int) -> float:
    """Fraction of ``truth_ids`` among the first ``n`` ranked images."""
    truth = {str(i) for i in truth_ids}
    if not truth:
        raise InputError("no true label errors given")
    return len(truth & set(ranking["id"].head(n).astype(str))) / len(truth)
