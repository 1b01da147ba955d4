"""Multi-label accuracy, ImageNet-M and ReaL accuracy (SPECS S2): arrays in, small results out.

The label files and the manifest columns they become are ``shiftlab.data.labelfiles``; the per-model table
over a labelled manifest is ``shiftlab.analyze.multilabel.multilabel_summary``.

Ties in scores go to the lowest class index.
- ``multilabel_accuracy``: problematic images dropped; an image is correct iff its top-1 is in
  correct ∪ unclear; accuracy per original class, then the unweighted mean over classes. A class without
  any scored image is an error unless ``allow_missing_classes`` (then the number of classes used is
  reported). A scored image with an empty correct ∪ unclear set counts as wrong and is counted.
- ``imagenet_m_accuracy``: count of the split's images whose top-1 is in correct ∪ unclear, no problematic
  filter, reported as count / size.
- ``real_accuracy``: images with an empty label set dropped (counted); micro-average of [top-1 ∈ set], and
  of [any of the top k ∈ set].
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from shiftlab.errors import InputError, LabelFileError
from shiftlab.metrics.accuracy import topk_indices


def _as_labels(v) -> list[int] | None:
    """A list-like of class indices → list of int; None/NaN → None (no labels for that row)."""
    if v is None or (isinstance(v, float) and v != v):
        return None
    if isinstance(v, (str, bytes)):
        raise LabelFileError(f"expected a list of class indices, got the text {v!r}")
    try:
        return [int(x) for x in v]
    except (TypeError, ValueError):
        raise LabelFileError(f"expected a list of class indices, got {v!r}") from None


@dataclass(frozen=True)
class LabelSets:
    """N sets of class indices (None = no labels for that row), answering "is class c in set i" for all rows at once.

    Stored as sorted codes ``i · K + c`` so that a membership test over 50,000 rows is one ``np.isin``.
    """

    codes: np.ndarray  # sorted int64
    sizes: np.ndarray  # (N,) set sizes; -1 for rows without labels
    n_classes: int

    @classmethod
    def from_lists(cls, lists: Sequence, n_classes: int) -> LabelSets:
        """Label sets of N rows from N lists of class indices in [0, ``n_classes``) (None/NaN = no labels).

        Repeated classes count once; ``LabelFileError`` for text or a class outside the range.
        """
        n = len(lists)
        sizes = np.full(n, -1, np.int64)
        rows, cols = [], []
        for i, s in enumerate(lists):
            vals = _as_labels(s)
            if vals is None:
                continue
            vals = sorted(set(vals))
            sizes[i] = len(vals)
            rows += [i] * len(vals)
            cols += vals
        rows_a, cols_a = np.asarray(rows, np.int64), np.asarray(cols, np.int64)
        if len(cols_a) and (cols_a.min() < 0 or cols_a.max() >= n_classes):
            raise LabelFileError(f"a label set names class {int(cols_a[(cols_a < 0) | (cols_a >= n_classes)][0])}, "
                                 f"outside 0..{n_classes - 1}")
        return cls(np.sort(rows_a * n_classes + cols_a), sizes, n_classes)

    def __len__(self) -> int:
        return len(self.sizes)

    @property
    def labelled(self) -> np.ndarray:
        """Bool (N,): the rows that have a label set (possibly empty)."""
        return self.sizes >= 0

    @property
    def empty(self) -> np.ndarray:
        """Bool (N,): the rows whose label set is empty (labelled, but no class)."""
        return self.sizes == 0

    def contains(self, classes: np.ndarray) -> np.ndarray:
        """Boolean (N,): is ``classes[i]`` in set i (False for rows without labels)."""
        classes = np.asarray(classes, np.int64)
        ok = (classes >= 0) & (classes < self.n_classes)
        code = np.arange(len(classes), dtype=np.int64) * self.n_classes + np.where(ok, classes, 0)
        at = np.minimum(np.searchsorted(self.codes, code), max(len(self.codes) - 1, 0))
        return ok & (self.codes[at] == code) if len(self.codes) else np.zeros(len(code), bool)

    def take(self, rows: np.ndarray) -> LabelSets:
        """The sets of the given rows (positions), in that order."""
        rows = np.asarray(rows, np.int64)
        new_of = np.full(len(self), -1, np.int64)
        new_of[rows] = np.arange(len(rows))
        r, c = self.codes // self.n_classes, self.codes % self.n_classes
        keep = new_of[r] >= 0
        return LabelSets(np.sort(new_of[r[keep]] * self.n_classes + c[keep]), self.sizes[rows], self.n_classes)

    def union(self, other: LabelSets) -> LabelSets:
        """The row-wise union with ``other`` (same N and K, else ``ValueError``); labelled where either is."""
        if len(other) != len(self) or other.n_classes != self.n_classes:
            raise ValueError("label sets of different shapes")
        codes = np.union1d(self.codes, other.codes)
        rows = codes // self.n_classes
        sizes = np.bincount(rows, minlength=len(self)).astype(np.int64)
        sizes[~(self.labelled | other.labelled)] = -1
        return LabelSets(codes, sizes, self.n_classes)


# --- metrics -----------------------------------------------------------------------------------------------
class MissingClassesError(InputError):
    """Multi-label accuracy would average over fewer classes than the vocabulary has."""


@dataclass(frozen=True)
class MultiLabelAccuracy:
    """Multi-label accuracy (a fraction) and what went into it."""

    accuracy: float
    n_scored: int  # non-problematic labelled images
    n_problematic: int
    n_empty: int  # scored images whose correct ∪ unclear is empty (counted as wrong)
    n_classes_used: int
    n_classes: int
    per_class: pd.DataFrame = field(repr=False)  # class, n, correct, accuracy


@dataclass(frozen=True)
class ImageNetMResult:
    """ImageNet-M accuracy as a count: ``correct`` of the split's ``size`` images (``str``: ``"correct/size"``)."""

    correct: int
    size: int

    def __str__(self) -> str:
        return f"{self.correct}/{self.size}"


@dataclass(frozen=True)
class ReaLAccuracy:
    """ReaL accuracy: ``top1`` and top-``k`` as fractions of the ``n_kept`` images with a non-empty label set
    (``n_dropped``: images whose set is empty).
    """

    top1: float
    topk: float  # NaN when fewer than k predictions per image exist
    k: int
    n_kept: int
    n_dropped: int  # images whose ReaL label set is empty


def top1_of(values: np.ndarray, kind: str = "scores") -> np.ndarray:
    """(N,) top-1 class per row; argmax ties go to the lowest index."""
    return topk_indices(values, 1, kind)[:, 0].astype(np.int64)


def predicted_top1(p) -> np.ndarray:
    """(N,) top-1 class of ``ModelPredictions`` ``p``; −1 for images that could not be decoded (their score
    rows are NaN)."""
    values = np.nan_to_num(p.values) if p.score_kind == "scores" else p.values
    return np.where(p.valid, top1_of(values, p.score_kind), -1)


def problematic_mask(values: Sequence) -> np.ndarray:
    """Bool (N,) from an ``is_problematic`` column (None/NaN for unlabelled rows → False)."""
    return np.array([bool(v) if v is not None and v == v else False for v in values], bool)


def _sets(x, n_classes: int) -> LabelSets:
    return x if isinstance(x, LabelSets) else LabelSets.from_lists(list(x), n_classes)


def multilabel_accuracy(top1: np.ndarray, original_label: np.ndarray, correct, unclear, is_problematic, *,
                        n_classes: int, allow_missing_classes: bool = False) -> MultiLabelAccuracy:
    """Multi-label accuracy (SPECS S2) of top-1 predictions.

    Parameters
    ----------
    top1 : (N,) int
        Each image's top-1 class (``top1_of`` breaks ties to the lowest index).
    original_label : (N,) int
        The image's original class: accuracy is averaged per original class.
    correct, unclear : sequences of N lists of class indices (or ``LabelSets``); None marks an unlabelled row
    is_problematic : (N,) bool (None for unlabelled rows)
    n_classes : int
        The classes that should each have scored images (the vocabulary size).
    allow_missing_classes : bool, default False
        A class without a scored image raises ``MissingClassesError`` unless this is set; then the mean
        runs over the classes that have one (``n_classes_used``).
    """
    top1 = np.asarray(top1, np.int64)
    y = np.asarray(original_label, np.int64)
    n = len(top1)
    if len(y) != n:
        raise InputError(f"{n} predictions but {len(y)} original labels")
    c = _sets(correct, n_classes)
    u = _sets(unclear, n_classes)
    if len(c) != n or len(u) != n:
        raise InputError(f"{n} predictions but {len(c)} correct and {len(u)} unclear label sets")
    prob = problematic_mask(is_problematic)
    labelled = c.labelled & u.labelled
    if len(prob) != n:
        raise InputError(f"{n} predictions but {len(prob)} is_problematic flags")
    ok = c.union(u)
    scored = labelled & ~prob & (y >= 0)
    hit = ok.contains(top1) & scored
    n_per = np.bincount(y[scored], minlength=n_classes)[:n_classes]
    hit_per = np.bincount(y[scored], weights=hit[scored].astype(float), minlength=n_classes)[:n_classes]
    used = n_per > 0
    if not used.all() and not allow_missing_classes:
        missing = np.flatnonzero(~used)
        raise MissingClassesError(f"multi-label accuracy: {len(missing)} of {n_classes} classes have no scored "
                                  f"(non-problematic, labelled) image (first: class {int(missing[0])}); pass "
                                  "--allow-missing-classes (allow_missing_classes=True) to average over the "
                                  f"{int(used.sum())} classes that have one")
    acc_per = np.divide(hit_per, n_per, out=np.full(n_classes, np.nan), where=used)
    per_class = pd.DataFrame({"class": np.arange(n_classes), "n": n_per, "correct": hit_per.astype(np.int64),
                              "accuracy": acc_per})[used].reset_index(drop=True)
    return MultiLabelAccuracy(
        accuracy=float(acc_per[used].mean()) if used.any() else float("nan"),
        n_scored=int(scored.sum()), n_problematic=int((labelled & prob).sum()),
        n_empty=int((scored & ok.empty).sum()), n_classes_used=int(used.sum()), n_classes=n_classes,
        per_class=per_class)


def imagenet_m_accuracy(top1: np.ndarray, correct, unclear, in_split: np.ndarray, *,
                        n_classes: int) -> ImageNetMResult:
    """ImageNet-M: how many of the split's images have their top-1 in correct ∪ unclear (no problematic filter)."""
    top1 = np.asarray(top1, np.int64)
    m = np.asarray(in_split, bool)
    if len(m) != len(top1):
        raise InputError(f"{len(top1)} predictions but {len(m)} ImageNet-M flags")
    ok = _sets(correct, n_classes).union(_sets(unclear, n_classes))
    unlabelled = m & ~ok.labelled
    if unlabelled.any():
        raise LabelFileError(f"{int(unlabelled.sum())} ImageNet-M image(s) have no multi-labels")
    return ImageNetMResult(int((ok.contains(top1) & m).sum()), int(m.sum()))


def real_accuracy(topk: np.ndarray, real_sets, *, k: int = 5, n_classes: int = 1000) -> ReaLAccuracy:
    """ReaL accuracy: top-1 ∈ set, and any of the first k ∈ set, over the images with a non-empty set.

    ``topk``: (N, j) class indices, best first (``topk_indices``); rows without labels (None) are not
    scored. Images whose set is empty are dropped and counted.
    """
    topk = np.asarray(topk, np.int64)
    if topk.ndim == 1:
        topk = topk[:, None]
    sets = _sets(real_sets, n_classes)
    if len(sets) != len(topk):
        raise InputError(f"{len(topk)} predictions but {len(sets)} ReaL label sets")
    keep = sets.sizes > 0
    n_kept = int(keep.sum())
    n_dropped = int(sets.empty.sum())
    hit1 = sets.contains(topk[:, 0]) & keep
    top1 = hit1.sum() / n_kept if n_kept else float("nan")
    if topk.shape[1] >= k:
        hitk = np.zeros(len(topk), bool)
        for j in range(k):
            hitk |= sets.contains(topk[:, j])
        topk_acc = (hitk & keep).sum() / n_kept if n_kept else float("nan")
    else:
        topk_acc = float("nan")
    return ReaLAccuracy(float(top1), float(topk_acc), k, n_kept, n_dropped)
