"""Accuracy of models on a test set: the library function behind ``shiftlab eval``."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from shiftlab.data.layouts import read_dataset
from shiftlab.data.manifest import Manifest
from shiftlab.errors import InputError
from shiftlab.fsutil import atomic_write_bytes
from shiftlab.metrics.accuracy import accuracy_summary, per_class_accuracy
from shiftlab.predict.engine import ModelPredictions, predict

#: the columns of the results CSV / Parquet (accuracies as fractions)
RESULT_COLUMNS = ["model", "dataset", "n_images", "n_bad", "top1", "top1_low", "top1_high", "top5"]


@dataclass
class EvalResult:
    """``evaluate``'s result: the accuracy table, the manifest it was measured on and the models' predictions.

    ``table`` has one row per model: ``RESULT_COLUMNS`` plus ``top5_low``, ``top5_high`` and ``n_scored``
    (accuracies as fractions in [0, 1]). ``predictions`` holds one ``ModelPredictions`` per model, in order.
    """

    table: pd.DataFrame  # one row per model, RESULT_COLUMNS + top5 interval
    manifest: Manifest
    predictions: list[ModelPredictions] = field(repr=False)

    def per_class(self, model: int | str = 0) -> pd.DataFrame:
        """Per-class top-1 of one model, given by position in ``predictions`` or by display name (default: the first).

        One row per class that has scored images: ``class, name, n, correct, top1, top1_low, top1_high``.
        """
        p = self.predictions[model] if isinstance(model, int) else \
            next(x for x in self.predictions if x.model == model)
        return per_class_accuracy(p.values, self.manifest.labels, kind=p.score_kind, valid=p.valid,
                                  class_names=self.manifest.vocabulary.names)

    def bad_images(self) -> pd.DataFrame:
        """The undecodable images of any model: DataFrame ``id, reason``, sorted, each pair once."""
        rows = {(i, r) for p in self.predictions for i, r in p.bad.items()}
        return pd.DataFrame(sorted(rows), columns=["id", "reason"])

    def write(self, out: str | Path) -> tuple[Path, Path]:
        """Write ``out`` as CSV (RESULT_COLUMNS) and the same table beside it as Parquet, each atomically; both
        are encoded before either is written, and ``InputError`` is raised before writing when either path is a
        folder (a half-written pair never results)."""
        import io

        out = Path(out)
        pq = out.with_suffix(".parquet")
        for p in (out, pq):
            if p.is_dir():
                raise InputError(f"{p} is a folder; give a file path for the results")
        out.parent.mkdir(parents=True, exist_ok=True)
        t = self.table[RESULT_COLUMNS]
        buf = io.BytesIO()
        t.to_parquet(buf, index=False)
        atomic_write_bytes(out, t.to_csv(index=False).encode())
        atomic_write_bytes(pq, buf.getvalue())
        return out, pq


def summarize(manifest: Manifest, preds: list[ModelPredictions], dataset_name: str | None = None) -> pd.DataFrame:
    """The accuracy table of predictions on a manifest: one row per model, in order.

    Columns ``RESULT_COLUMNS`` plus ``top5_low``, ``top5_high`` and ``n_scored`` (fractions in [0, 1]);
    ``dataset`` is ``dataset_name``, by default the manifest's name. Raises ``InputError`` when a model's scores
    have fewer classes than the manifest's largest label.
    """
    rows = []
    top_label = int(manifest.labels.max(initial=-1))
    for p in preds:
        if p.kind != "topk" and top_label >= p.values.shape[1]:
            raise InputError(f"{p.model} predicts {p.values.shape[1]} classes but {manifest.name} has label "
                             f"{top_label} ({manifest.vocabulary.name}); evaluate it on a set of its own classes")
        s = accuracy_summary(p.values, manifest.labels, kind=p.score_kind, valid=p.valid)
        rows.append({"model": p.model, "dataset": dataset_name or manifest.name, **s})
    cols = RESULT_COLUMNS + ["top5_low", "top5_high", "n_scored"]
    return pd.DataFrame(rows, columns=cols)


def evaluate(dataset: str | Manifest, models: list[str], *, workspace=None, layout: str | None = None,
             root: str | None = None, vocabulary=None, device: str = "auto", batch_size: int = 64,
             recipe_overrides: dict | None = None, workers: int | None = None, progress: bool = True) -> EvalResult:
    """Top-1/top-5 (with 95% Clopper–Pearson intervals) of each model on ``dataset``.

    ``dataset``: a Manifest, a registered name, or a path (layout detected unless ``layout`` is given).
    ``models``: spec strings (see ``shiftlab.models.specs``). Undecodable images are excluded from the
    accuracies and counted in ``n_bad``.
    """
    manifest = dataset if isinstance(dataset, Manifest) else read_dataset(
        dataset, layout=layout, workspace=workspace, root=root, vocabulary=vocabulary, progress=progress)
    preds = predict(manifest, models, workspace=workspace, device=device, batch_size=batch_size,
                    recipe_overrides=recipe_overrides, workers=workers, progress=progress)
    return EvalResult(summarize(manifest, preds), manifest, preds)
