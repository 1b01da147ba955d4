"""Class confusions: unordered class pairs with counts, stored with a < b.

``read_confusions`` reads the published ``class_confusion_*.json``; ``confusion_pairs`` counts them over the top-1
errors of a set of models; ``model_confusions`` does so for predictions on a manifest (multi-label aware).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from shiftlab.data.classes import imagenet_1k
from shiftlab.data.labelfiles import has_multilabels, read_labelled_dataset
from shiftlab.errors import InputError
from shiftlab.metrics.multilabel import LabelSets, predicted_top1, problematic_mask
from shiftlab.predict.engine import predict
from shiftlab.report.figures import confusion_figure

# --- class confusions --------------------------------------------------------------------------------------
CONFUSION_COLUMNS = ["a", "b", "a_name", "b_name", "count"]


def _unordered(df: pd.DataFrame) -> pd.DataFrame:
    """Pairs stored once with a < b (by index when both are known, else by name); repeated pairs summed."""
    swap = np.where((df.a >= 0) & (df.b >= 0), df.a > df.b, df.a_name.astype(str) > df.b_name.astype(str))
    out = pd.DataFrame({"a": np.where(swap, df.b, df.a).astype(np.int64),
                        "b": np.where(swap, df.a, df.b).astype(np.int64),
                        "a_name": np.where(swap, df.b_name, df.a_name), "b_name": np.where(swap, df.a_name, df.b_name),
                        "count": df["count"].to_numpy()})
    out = out.groupby(["a", "b", "a_name", "b_name"], as_index=False, sort=False)["count"].sum()
    return out.sort_values(["count", "a", "b", "a_name"], ascending=[False, True, True, True],
                           kind="stable").reset_index(drop=True)[CONFUSION_COLUMNS]


def read_confusions(path: str | os.PathLike, vocabulary=None) -> pd.DataFrame:
    """Read a ``class_confusion_*.json`` (``[[a, b, count], …]``, a and b wnids or class names).

    Returns ``a, b, a_name, b_name, count`` with a < b: class indices from ``vocabulary`` (ImageNet-1k by
    default; −1 where a name is ambiguous, as ImageNet's two "crane"s), names as in the file.
    """

    voc = vocabulary or imagenet_1k()
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
        rows = [(str(a), str(b), int(c)) for a, b, c in doc]
    except (OSError, ValueError, TypeError) as e:
        raise InputError(f"{path}: not a class-confusion file ([[a, b, count], …]): {e}") from None
    if any(c < 0 for *_, c in rows):
        raise InputError(f"{path}: negative confusion counts")
    df = pd.DataFrame(rows, columns=["a_name", "b_name", "count"])
    # the names file writes each class's first synonym; "Cardigan" (the corgi) is not "cardigan" (the jacket),
    # so a first name decides where it is unique, and only then the vocabulary's looser lookup
    first: dict[str, int | None] = {}
    for c in voc.classes:
        first[c.name] = None if c.name in first else c.index
    idx = {k: first[k] if k in first else voc.try_index_of(k) for k in set(df.a_name) | set(df.b_name)}
    unknown = [k for k, v in idx.items() if v is None and not voc.knows(k)]
    if unknown:
        raise InputError(f"{path}: class {unknown[0]!r} is not in the {voc.name} vocabulary")
    df["a"] = [-1 if idx[k] is None else idx[k] for k in df.a_name]
    df["b"] = [-1 if idx[k] is None else idx[k] for k in df.b_name]
    return _unordered(df)


def confusion_pairs(labels: np.ndarray, top1_by_model: Mapping[str, np.ndarray] | Sequence, *,
                    class_names: Sequence[str] | None = None,
                    exclude: np.ndarray | Mapping | None = None) -> pd.DataFrame:
    """Unordered class-pair counts over the top-1 errors of a set of models.

    Parameters
    ----------
    labels : (N,) int
        The images' labels (−1 = unknown, never counted).
    top1_by_model : dict model → (N,) top-1 classes, or a list of ``ModelPredictions``
    class_names : list of str, optional
    exclude : (N,) bool, or dict model → (N,) bool, optional
        Errors not to count (e.g. predictions that the multi-labels accept: they are no confusion).

    Returns
    -------
    DataFrame ``a, b, a_name, b_name, count, models`` (a < b; ``models`` = how many models make the
    confusion at least once), most frequent first.
    """
    if not isinstance(top1_by_model, Mapping):
        top1_by_model = {p.model: predicted_top1(p) for p in top1_by_model}
    y = np.asarray(labels, np.int64)
    parts = []
    for m, t in top1_by_model.items():
        t = np.asarray(t, np.int64)
        if len(t) != len(y):
            raise InputError(f"{m}: {len(t)} predictions for {len(y)} labels")
        err = (y >= 0) & (t >= 0) & (t != y)
        ex = exclude.get(m) if isinstance(exclude, Mapping) else exclude
        if ex is not None:
            err &= ~np.asarray(ex, bool)
        a, b = np.minimum(y[err], t[err]), np.maximum(y[err], t[err])
        parts.append(pd.DataFrame({"a": a, "b": b, "model": m}))
    allp = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["a", "b", "model"])
    g = allp.groupby(["a", "b"]).agg(count=("model", "size"), models=("model", "nunique")).reset_index()
    name = (lambda k: class_names[k]) if class_names is not None else str
    g.insert(2, "a_name", [name(int(k)) for k in g.a])
    g.insert(3, "b_name", [name(int(k)) for k in g.b])
    return g.sort_values(["count", "a", "b"], ascending=[False, True, True], kind="stable").reset_index(drop=True)


def model_confusions(manifest, predictions: Sequence) -> pd.DataFrame:
    """``confusion_pairs`` of ``ModelPredictions`` on a manifest. With multi-label columns, errors that the
    multi-labels accept (no confusion at all) and problematic images (no usable label) are not counted."""

    top1 = {p.model: predicted_top1(p) for p in predictions}
    exclude = None
    if has_multilabels(manifest):
        k = len(manifest.vocabulary)
        t = manifest.table
        ok = LabelSets.from_lists(t["correct_multi_labels"].tolist(), k).union(
            LabelSets.from_lists(t["unclear_multi_labels"].tolist(), k))
        bad = problematic_mask(t["is_problematic"])
        exclude = {m: bad | ok.contains(t1) for m, t1 in top1.items()}
    return confusion_pairs(manifest.labels, top1, class_names=manifest.vocabulary.names, exclude=exclude)


@dataclass
class ConfusionStudy:
    """``confusion_study``'s result: the dataset's name, the models and their confusion pairs
    (``CONFUSION_COLUMNS`` plus ``models``, the number of models making each confusion; most frequent first)."""

    dataset: str
    models: list[str]
    pairs: pd.DataFrame

    @property
    def n_errors(self) -> int:
        """The number of counted top-1 errors: the sum of ``count`` over all pairs (0 when there is none)."""
        return int(self.pairs["count"].sum()) if len(self.pairs) else 0

    def write(self, folder: str | os.PathLike, top: int = 20) -> list[Path]:
        """``confusions.csv`` and, when there is any confusion, ``confusions.png`` (the ``top`` pairs)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.pairs.to_csv(folder / "confusions.csv", index=False)
        written = [folder / "confusions.csv"]
        if len(self.pairs):
            fig = confusion_figure(self.pairs, top, title=f"Most frequent confusions on {self.dataset}")
            fig.savefig(folder / "confusions.png", dpi=150, bbox_inches="tight", facecolor="white")
            written.append(folder / "confusions.png")
        return written


def confusion_study(dataset, models: Sequence[str], *, labels: Sequence[str] | None = None,
                    workspace=None, progress: bool = True) -> ConfusionStudy:
    """``shiftlab confusions``: predict ``models`` on ``dataset`` (name, path or Manifest; ``labels`` as
    ``read_labelled_dataset``) and count their confusions (``model_confusions``)."""
    models = [m for m in models if m]
    if not models:
        raise InputError("no models given; name one or more model specs")
    m = dataset if hasattr(dataset, "table") else read_labelled_dataset(dataset, labels, workspace=workspace)
    pairs = model_confusions(m, predict(m, list(models), workspace=workspace, progress=progress))
    return ConfusionStudy(m.name, list(models), pairs)
