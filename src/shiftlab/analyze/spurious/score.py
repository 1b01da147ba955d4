"""The spurious score (SPECS S3, Neuhaus et al. 2023): how well a model's p_k tells class k from its spurious feature.

For each class k:

- positives: the test (for ImageNet: validation) images labelled k;
- negatives: images that show k's spurious feature *without* the class object (Spurious ImageNet's folders of
  class k, the digits world's ``spurious`` split rows whose ``cue_class`` is k, a user's own folder);
- score: the float32 softmax probability p_k over all of the model's outputs.

Two rankings are measured, clearly named:

- ``ap``: scikit-learn's ``average_precision_score`` of positives (1) against negatives (0). This is the metric the
  published code computes and labels "Spurious AUC" / "SpuriousScore"; the published ``spurious_score.txt``
  shows it in the "Spurious AUC" column.
- ``roc_auc``: scikit-learn's ``roc_auc_score`` (ties count ½). Our addition, in the CSV / Parquet only.

Each is given per class, as the unweighted mean over the classes used, and "joint": one AP / ROC-AUC over all
classes' positives and negatives pooled, each image scored by its own class's p_k. A class with no positives
or no negatives is left out with a warning (``SpuriousScoreWarning``) and the number of classes used is
reported; no NaN reaches a mean. Undecodable images are left out, with a warning, too.

A high score means the model keeps class k apart from k's spurious feature; a model that learned the feature as
evidence for k gives the negatives a high p_k and scores low.

Example::

    >>> res = spurious_score(["world:mlp"], "world-test", "world-spurious")   # negatives by cue_class
    >>> res[0].mean_ap, res[0].joint_ap, res[0].table
    >>> res[0].write("out/mlp")        # spurious_score.txt, spurious_score.csv, spurious_score.parquet
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from shiftlab.errors import InputError
from shiftlab.fsutil import atomic_write_bytes

#: columns that say, per row of a negatives manifest, which class's spurious feature the image shows, in the
#: order they are looked for: the Spurious ImageNet layout's, then the digits world's ``spurious`` split's
NEGATIVE_CLASS_COLUMNS = ("spurious_class", "cue_class")

#: the per-class table's columns (CSV / Parquet), in order
TABLE_COLUMNS = ["class", "class_name", "n_positives", "n_negatives", "ap", "roc_auc",
                 "positives_mean_prob", "negatives_mean_prob", "positives_frac_predicted",
                 "negatives_frac_predicted"]

#: ``spurious_score.txt``'s table: the published column names and the TABLE_COLUMNS they show
TXT_COLUMNS = {"Idx": "class", "Class": "class_name", "Spurious AUC": "ap",
               "Validation Mean Prob": "positives_mean_prob", "Spurious Mean Prob": "negatives_mean_prob",
               "Frac Validation labeled as": "positives_frac_predicted",
               "Frac Spurious labeled as": "negatives_frac_predicted"}

#: the summary's columns (one row per model)
SUMMARY_COLUMNS = ["model", "positives", "negatives", "n_classes", "n_excluded", "mean_ap", "joint_ap",
                   "mean_roc_auc", "joint_roc_auc"]


class SpuriousScoreWarning(UserWarning):
    """A class left out of the spurious score (no positives or no negatives), or images left out (undecodable)."""


@dataclass
class SpuriousScore:
    """One model's spurious score.

    ``table``: one row per class used, sorted by class index, columns ``TABLE_COLUMNS`` (``ap`` is the published
    "Spurious AUC"; mean probabilities and "frac predicted" — the share with argmax == k — on each side).
    ``mean_ap`` / ``mean_roc_auc``: unweighted means over the classes used; ``joint_ap`` / ``joint_roc_auc``: over
    all classes' rows pooled. ``n_classes``: how many classes were used; ``excluded``: class → why it was left
    out; ``warnings``: every warning raised while scoring, as text.
    """

    model: str
    table: pd.DataFrame
    mean_ap: float
    joint_ap: float
    mean_roc_auc: float
    joint_roc_auc: float
    n_classes: int
    excluded: dict[int, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    positives: str = ""
    negatives: str = ""

    def summary(self) -> dict:
        """One row of the models' summary (``SUMMARY_COLUMNS``)."""
        return {"model": self.model, "positives": self.positives, "negatives": self.negatives,
                "n_classes": self.n_classes, "n_excluded": len(self.excluded), "mean_ap": self.mean_ap,
                "joint_ap": self.joint_ap, "mean_roc_auc": self.mean_roc_auc, "joint_roc_auc": self.joint_roc_auc}

    def text(self) -> str:
        """``spurious_score.txt`` as the published code writes it (see ``format_score_txt``)."""
        return format_score_txt(self)

    def write(self, folder: str | Path) -> list[Path]:
        """Write ``spurious_score.txt``, ``spurious_score.csv`` and ``spurious_score.parquet`` (``TABLE_COLUMNS``,
        ROC-AUC included) into ``folder``, each atomically; all three are encoded before any is written."""
        folder = Path(folder)
        if folder.exists() and not folder.is_dir():
            raise InputError(f"{folder} is a file; give a folder for the spurious-score files")
        t = self.table[TABLE_COLUMNS]
        buf = io.BytesIO()
        t.to_parquet(buf, index=False)
        payload = {"spurious_score.txt": self.text().encode(), "spurious_score.csv": t.to_csv(index=False).encode(),
                   "spurious_score.parquet": buf.getvalue()}
        folder.mkdir(parents=True, exist_ok=True)
        out = []
        for name, data in payload.items():
            atomic_write_bytes(folder / name, data)
            out.append(folder / name)
        return out


# --- the arithmetic (arrays in) -----------------------------------------------------------------------------
def softmax32(logits: np.ndarray) -> np.ndarray:
    """The float32 softmax over all outputs, row by row (as the published code: ``torch.softmax`` of float32)."""
    import torch

    return torch.softmax(torch.from_numpy(np.ascontiguousarray(logits, dtype=np.float32)), dim=1).numpy()


def _ap_roc(pos: np.ndarray, neg: np.ndarray) -> tuple[float, float]:
    from sklearn.metrics import average_precision_score, roc_auc_score

    y = np.r_[np.ones(len(pos), np.int64), np.zeros(len(neg), np.int64)]
    s = np.r_[pos, neg]
    return float(average_precision_score(y, s)), float(roc_auc_score(y, s))


def score_classes(pos_probs: np.ndarray, pos_labels: np.ndarray, neg_probs: np.ndarray, neg_classes: np.ndarray, *,
                  classes: Sequence[int] | None = None, class_names: Sequence[str] | None = None,
                  model: str = "", positives: str = "", negatives: str = "") -> SpuriousScore:
    """The spurious score from probabilities.

    Parameters
    ----------
    pos_probs : (N, K) float array
        Probabilities (softmax over all outputs) of the positives set; row i is a positive of class
        ``pos_labels[i]`` (rows labelled −1, or with a class not scored, are not used).
    pos_labels : (N,) int array
    neg_probs : (M, K) float array
        Probabilities of the negatives; row j shows the spurious feature of class ``neg_classes[j]`` without it.
    neg_classes : (M,) int array
    classes : sequence of int, optional
        The classes to score (default: every class that has negatives). One without positives or without
        negatives is left out with a ``SpuriousScoreWarning``.
    class_names : sequence of str, optional
        Names by class index (default: the index as text).
    model, positives, negatives : str
        Names recorded in the result.

    Returns
    -------
    SpuriousScore
        Raises ``InputError`` when no class has both positives and negatives, or a class is beyond the
        probabilities' K columns.
    """
    pos_probs, neg_probs = np.asarray(pos_probs), np.asarray(neg_probs)
    pos_labels, neg_classes = np.asarray(pos_labels, np.int64), np.asarray(neg_classes, np.int64)
    if pos_probs.ndim != 2 or neg_probs.ndim != 2 or pos_probs.shape[1] != neg_probs.shape[1]:
        raise InputError(f"positives' and negatives' probabilities must be (N, K) arrays with the same K, not "
                         f"{pos_probs.shape} and {neg_probs.shape}")
    if len(pos_labels) != len(pos_probs) or len(neg_classes) != len(neg_probs):
        raise InputError("one label per positive and one class per negative are needed")
    n_out = pos_probs.shape[1]
    wanted = sorted({int(c) for c in (neg_classes[neg_classes >= 0] if classes is None else classes)})
    beyond = [c for c in wanted if not 0 <= c < n_out]
    if beyond:
        raise InputError(f"class {beyond[0]} is beyond the model's {n_out} outputs (0..{n_out - 1})")
    names = (lambda k: str(class_names[k])) if class_names is not None else str
    rows, excluded, notes = [], {}, []
    pooled_pos, pooled_neg = [], []
    for k in wanted:
        pos_rows, neg_rows = pos_probs[pos_labels == k], neg_probs[neg_classes == k]
        if len(pos_rows) == 0 or len(neg_rows) == 0:
            why = "no positives" if len(pos_rows) == 0 else "no negatives"
            if len(pos_rows) == 0 and len(neg_rows) == 0:
                why = "no positives and no negatives"
            excluded[k] = why
            notes.append(f"class {k} ({names(k)}) left out of the spurious score: {why}")
            continue
        # float32 scores, as the published code ranks them
        ps, ns = pos_rows[:, k].astype(np.float32), neg_rows[:, k].astype(np.float32)
        ap, roc = _ap_roc(ps, ns)
        pooled_pos.append(ps)
        pooled_neg.append(ns)
        rows.append({"class": k, "class_name": names(k), "n_positives": len(ps), "n_negatives": len(ns),
                     "ap": ap, "roc_auc": roc,
                     "positives_mean_prob": float(np.mean(ps, dtype=np.float64)),
                     "negatives_mean_prob": float(np.mean(ns, dtype=np.float64)),
                     "positives_frac_predicted": float(np.mean(pos_rows.argmax(1) == k)),
                     "negatives_frac_predicted": float(np.mean(neg_rows.argmax(1) == k))})
    if not rows:
        raise InputError(f"no class has both positives and negatives ({len(wanted)} asked for: "
                         f"{', '.join(f'{k} {w}' for k, w in list(excluded.items())[:3])}); "
                         "check that the positives set and the negatives name the same classes")
    if excluded:
        notes.append(f"spurious score over {len(rows)} of {len(wanted)} classes ({len(excluded)} left out)")
    for n in notes:
        warnings.warn(n, SpuriousScoreWarning, stacklevel=2)
    table = pd.DataFrame(rows, columns=TABLE_COLUMNS)
    joint_ap, joint_roc = _ap_roc(np.concatenate(pooled_pos), np.concatenate(pooled_neg))
    return SpuriousScore(model, table, float(table["ap"].mean()), joint_ap, float(table["roc_auc"].mean()),
                         joint_roc, len(rows), excluded, notes, positives, negatives)


# --- the published text file ----------------------------------------------------------------------------------
def format_score_txt(result: SpuriousScore) -> str:
    """``spurious_score.txt`` in the published shape.

    Line 1: ``Mean SpuriousScore: {:.3f} - Joint SpuriousScore: {:.3f}`` (the AP scores); then a PrettyTable with
    the published columns (``TXT_COLUMNS``) and ``float_format = '.4'``, the published setting, which PrettyTable
    renders as ``{:.4f}`` (four decimals: 0.9876, 1.0000, 0.0123); rows sorted by class index (the published rows
    come in Python set order, so compare files as sets of rows). No newline after the table, as published.
    ROC-AUC is not in this file (CSV / Parquet only).
    """
    from prettytable import PrettyTable

    pt = PrettyTable()
    pt.field_names = list(TXT_COLUMNS)
    pt.float_format = ".4"
    for d in result.table.sort_values("class").to_dict("records"):
        pt.add_row([int(d["class"]), str(d["class_name"])] + [float(d[c]) for c in list(TXT_COLUMNS.values())[2:]])
    return (f"Mean SpuriousScore: {result.mean_ap:.3f} - Joint SpuriousScore: {result.joint_ap:.3f}\n"
            + pt.get_string())


def write_summary(results: Sequence[SpuriousScore], path: str | Path) -> tuple[Path, Path]:
    """The models' summary (``SUMMARY_COLUMNS``) as ``path`` (CSV) and the same table beside it as Parquet."""
    path = Path(path)
    t = pd.DataFrame([r.summary() for r in results], columns=SUMMARY_COLUMNS)
    buf = io.BytesIO()
    t.to_parquet(buf, index=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, t.to_csv(index=False).encode())
    atomic_write_bytes(path.with_suffix(".parquet"), buf.getvalue())
    return path, path.with_suffix(".parquet")


# --- manifests and models in ----------------------------------------------------------------------------------
def negative_classes(manifest, *, by: str | None = None, klass: int | None = None) -> np.ndarray:
    """Which class's negative each row of ``manifest`` is: (M,) int64.

    ``klass``: every row (a user's own folder of one class's spurious feature); ``by``: the named column;
    neither: the first of ``NEGATIVE_CLASS_COLUMNS`` the manifest has (``spurious_class`` of the Spurious
    ImageNet layout, ``cue_class`` of the digits world's ``spurious`` split). ``InputError`` when none applies,
    a class is outside the vocabulary, or both ``by`` and ``klass`` are given.
    """
    n = len(manifest.vocabulary)
    if by is not None and klass is not None:
        raise InputError("give the negatives' class (--class K) or the column naming it (--by COLUMN), not both")
    if klass is not None:
        if not 0 <= int(klass) < n:
            raise InputError(f"--class {klass} is outside the {n} classes of {manifest.vocabulary.name} (0..{n - 1})")
        return np.full(len(manifest), int(klass), np.int64)
    cols = manifest.table.columns
    if by is None:
        by = next((c for c in NEGATIVE_CLASS_COLUMNS if c in cols), None)
        if by is None:
            raise InputError(f"{manifest.name}: which class's negatives are these? Give --class K (one class) or "
                             f"--by COLUMN (has {', '.join(map(str, cols))})")
    elif by not in cols:
        raise InputError(f"{manifest.name} has no column {by!r} (has {', '.join(map(str, cols))})")
    v = pd.to_numeric(manifest.table[by], errors="coerce")
    if v.isna().any() or (v != v.round()).any():
        raise InputError(f"{manifest.name}: column {by!r} must hold class indices (whole numbers) on every row")
    v = v.to_numpy(np.int64)
    if ((v < 0) | (v >= n)).any():
        bad = int(v[(v < 0) | (v >= n)][0])
        raise InputError(f"{manifest.name}: column {by!r} holds {bad}, outside the {n} classes of "
                         f"{manifest.vocabulary.name}")
    return v


def _probabilities(p, where: str) -> np.ndarray:
    if p.kind == "topk":
        raise InputError(f"{p.model} on {where}: top-k predictions carry no probabilities; the spurious score "
                         "needs logits or probabilities")
    return softmax32(p.values) if p.kind == "logits" else np.asarray(p.values, np.float32)


def spurious_score(models: Sequence, positives, negatives, *, by: str | None = None, klass: int | None = None,
                   classes: Sequence[int] | None = None, negatives_resize_only: bool | None = None,
                   workspace=None, device: str = "auto", batch_size: int = 64, workers: int | None = None,
                   progress: bool = True) -> list[SpuriousScore]:
    """Each model's spurious score, with predictions from the prediction store (computed once, reused).

    Parameters
    ----------
    models : sequence of spec strings or Classifiers
    positives : Manifest or str
        The positives set (registered name or path): its images labelled k are class k's positives.
    negatives : Manifest or str
        The negatives; which class each row belongs to comes from ``negative_classes(by=, klass=)``.
    classes : sequence of int, optional
        Classes to score (default: every class with negatives).
    negatives_resize_only : bool, optional
        Preprocess the negatives with Resize(S) and no crop, S = the model's crop size (SPECS S3: Spurious
        ImageNet images are square, so this is the recipe with ``resize = crop``). Default: True for a manifest
        of the Spurious ImageNet layout, else False (the model's own recipe).
    workspace, device, batch_size, workers, progress
        As for ``shiftlab.predict.engine.predict``.

    Returns
    -------
    list of SpuriousScore, one per model, in order.
    """
    from shiftlab.data.layouts import read_dataset
    from shiftlab.data.manifest import Manifest
    from shiftlab.models.classifier import Classifier
    from shiftlab.models.specs import load_model
    from shiftlab.predict.engine import predict

    pos = positives if isinstance(positives, Manifest) else read_dataset(positives, workspace=workspace,
                                                                         progress=progress)
    neg = negatives if isinstance(negatives, Manifest) else read_dataset(negatives, workspace=workspace,
                                                                         progress=progress)
    if pos.vocabulary.names != neg.vocabulary.names:
        raise InputError(f"{pos.name} ({pos.vocabulary.name}) and {neg.name} ({neg.vocabulary.name}) have "
                         "different classes; positives and negatives must share one vocabulary")
    neg_cls = negative_classes(neg, by=by, klass=klass)
    if negatives_resize_only is None:
        negatives_resize_only = neg.parameters.get("layout") == "spurious-imagenet"
    kw = {"workspace": workspace, "device": device, "batch_size": batch_size, "workers": workers,
          "progress": progress}
    out = []
    for spec in models:
        model = load_model(spec, workspace=workspace) if isinstance(spec, str) else spec
        [pp] = predict(pos, [model], **kw)
        own = getattr(model, "recipe", None)
        if negatives_resize_only and isinstance(model, Classifier) and own.crop is not None:
            model.recipe = own.with_overrides(resize=own.crop)
        try:
            [pn] = predict(neg, [model], **kw)
        finally:
            if own is not None:
                model.recipe = own  # a Classifier passed in keeps its own preprocessing
        notes = []
        for p, m, what in ((pp, pos, "positives"), (pn, neg, "negatives")):
            if not p.valid.all():
                notes.append(f"{int((~p.valid).sum())} undecodable image(s) of the {what} ({m.name}) left out")
        for n in notes:
            warnings.warn(n, SpuriousScoreWarning, stacklevel=2)
        res = score_classes(_probabilities(pp, pos.name)[pp.valid], pos.labels[pp.valid],
                            _probabilities(pn, neg.name)[pn.valid], neg_cls[pn.valid], classes=classes,
                            class_names=pos.vocabulary.names, model=pp.model, positives=pos.name,
                            negatives=neg.name)
        res.warnings[:0] = notes
        out.append(res)
    return out
