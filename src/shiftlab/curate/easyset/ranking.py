"""The ranked candidate lists of a model-specific curated set (SPECS S5): per model and class, the images the model
classifies correctly, by softmax confidence, in SCOOTER's ``safebets.json`` shape ``{model: {class: [[file,
confidence], …]}}``.

Reproducing the released file needs its exact order, which is not the one DataProcessing.md describes: each model
ranks its *own* correctly classified images (``agreement="own"``), ties by file name, and a model's classes appear
in the order they first receive an entry while all its (confidence desc, class asc, file asc) rows are walked and
each class is filled up to ``top``. ``agreement="ensemble"`` (every member right: the documented intent) and a
margin tie-break (``tie="margin"``) are our options, off when reproducing.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from shiftlab.errors import InputError
from shiftlab.fsutil import atomic_write_bytes, read_json

#: the long-form table every ranking is computed from: one row per (model, image)
CANDIDATE_COLUMNS = ("model", "id", "label", "prediction", "confidence", "margin")
AGREEMENTS = ("own", "ensemble")
TIES = ("name", "margin")


def softmax_rows(scores: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float64 (a logit difference of 100 must not overflow), returned as float32: the
    confidences of the released file are float32 values."""
    s = np.asarray(scores, dtype=np.float64)
    s = s - s.max(axis=1, keepdims=True)
    e = np.exp(s)
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def candidate_table(ids: Sequence[str], labels: np.ndarray, probabilities: Mapping[str, np.ndarray],
                    valid: Mapping[str, np.ndarray] | None = None) -> pd.DataFrame:
    """``CANDIDATE_COLUMNS`` for every model and every valid row: its prediction, the softmax confidence of the
    prediction and the margin to the runner-up. ``probabilities``: model → (N, K) softmax rows in ``ids`` order;
    ``valid``: model → (N,) False for rows to leave out (undecodable images)."""
    ids = np.asarray(ids, dtype=object)
    labels = np.asarray(labels, dtype=np.int64)
    frames = []
    for model, p in probabilities.items():
        p = np.asarray(p, dtype=np.float32)
        if p.shape[0] != len(ids):
            raise InputError(f"model {model}: {p.shape[0]} prediction rows for {len(ids)} images")
        ok = np.ones(len(ids), bool) if valid is None else np.asarray(valid[model], bool)
        two = np.sort(p, axis=1)[:, -2:] if p.shape[1] > 1 else np.concatenate([np.zeros_like(p), p], axis=1)
        frames.append(pd.DataFrame({"model": model, "id": ids[ok], "label": labels[ok],
                                    "prediction": p.argmax(axis=1)[ok], "confidence": two[ok, 1],
                                    "margin": (two[:, 1] - two[:, 0])[ok]}))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(CANDIDATE_COLUMNS))


def correct_rows(candidates: pd.DataFrame, *, agreement: str = "own") -> pd.DataFrame:
    """The rows each model gets right; with ``agreement="ensemble"``, only images that every model gets right."""
    if agreement not in AGREEMENTS:
        raise InputError(f"agreement {agreement!r}: one of {', '.join(AGREEMENTS)}")
    right = candidates[candidates["prediction"] == candidates["label"]]
    if agreement == "ensemble":
        n_models = candidates["model"].nunique()
        n_right = right.groupby("id")["model"].nunique()
        right = right[right["id"].map(n_right).eq(n_models)]
    return right


def _order(rows: pd.DataFrame, tie: str) -> pd.DataFrame:
    if tie not in TIES:
        raise InputError(f"tie-break {tie!r}: one of {', '.join(TIES)}")
    # confidence desc, (margin desc), class asc, file asc: the released file's order plus our optional margin
    by, asc = (["confidence", "margin", "label", "id"], [False, False, True, True]) if tie == "margin" else \
        (["confidence", "label", "id"], [False, True, True])
    return rows.sort_values(by, ascending=asc, kind="mergesort")


def rank(candidates: pd.DataFrame, *, top: int = 5, agreement: str = "own", tie: str = "name",
         models: Sequence[str] | None = None) -> dict[str, dict[str, list]]:
    """``{model: {class: [[file, confidence], …top]}}`` from a candidate table (module docstring for the order).

    ``candidates``: ``CANDIDATE_COLUMNS`` (``margin`` only read with ``tie="margin"``); ``models``: the output's
    model order (default: first appearance). Confidences are Python floats of the float32 values."""
    if top < 1:
        raise InputError(f"--top {top}: give at least 1")
    right = correct_rows(candidates, agreement=agreement)
    models = list(models) if models is not None else list(dict.fromkeys(candidates["model"]))
    out: dict[str, dict[str, list]] = {}
    for m in models:
        lists: dict[str, list] = {}
        rows = _order(right[right["model"] == m], tie)
        for f, k, c in zip(rows["id"], rows["label"], rows["confidence"]):
            lst = lists.setdefault(str(int(k)), [])
            if len(lst) < top:
                lst.append([str(f), float(np.float32(c))])
        out[m] = lists
    return out


def dumps_ranking(ranking: Mapping) -> bytes:
    """The released file's bytes: ``json.dumps`` defaults (", " and ": "), no trailing newline."""
    return json.dumps(ranking).encode()


def write_ranking(path: str | os.PathLike, ranking: Mapping) -> Path:
    """Write ``ranking`` atomically in the ``safebets.json`` shape."""
    atomic_write_bytes(path, dumps_ranking(ranking))
    return Path(path)


def read_ranking(path: str | os.PathLike) -> dict[str, dict[str, list]]:
    """A ``safebets.json``-shaped file, checked: ``{model: {class: [[file, confidence], …]}}``; ``InputError``
    naming the first entry that is not of that shape."""
    doc = read_json(path, what="ranking")
    if not isinstance(doc, dict) or not doc:
        raise InputError(f"{path}: a ranking is {{model: {{class: [[file, confidence], …]}}}}")
    for m, classes in doc.items():
        if not isinstance(classes, dict):
            raise InputError(f"{path}: model {m!r} maps to {type(classes).__name__}, not {{class: [...]}}")
        for k, lst in classes.items():
            if not k.lstrip("-").isdigit() or not isinstance(lst, list) or not all(
                    isinstance(e, list) and len(e) == 2 and isinstance(e[0], str)
                    and isinstance(e[1], (int, float)) and not isinstance(e[1], bool) for e in lst):
                raise InputError(f"{path}: {m} class {k!r}: give a class index and a list of [file, confidence]")
    return doc


def ranking_table(ranking: Mapping) -> pd.DataFrame:
    """A ranking as rows ``model, class, rank (1-based), id, confidence`` in file order."""
    rows = [(m, int(k), r + 1, f, float(c)) for m, classes in ranking.items() for k, lst in classes.items()
            for r, (f, c) in enumerate(lst)]
    return pd.DataFrame(rows, columns=["model", "class", "rank", "id", "confidence"])


def absent_classes(ranking: Mapping, model: str, n_classes: int) -> list[int]:
    """The classes of 0..n_classes-1 that ``model`` has no list for."""
    have = {int(k) for k in ranking[model]}
    return [k for k in range(n_classes) if k not in have]
