"""The mistakes study of one model on one set: predictions → pre-categorised errors → review → final records."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from shiftlab.analyze.mistakes.precategorize import nearest_training_labels, precategorize
from shiftlab.analyze.mistakes.records import (
    AUTO_ORDER,
    CATEGORIES,
    FINE_GRAINED,
    FINE_GRAINED_OOV,
    MAJOR,
    MULTILABEL_OPTIONS,
    NON_PROTOTYPICAL,
    NOT_A_MISTAKE,
    RECORD_COLUMNS,
    SEVERITIES,
    SPURIOUS,
    normalize_category,
    normalize_severity,
    write_mistakes,
)
from shiftlab.data.hierarchy import DEFAULT_MAX_HOPS, Hierarchy, imagenet_hierarchy, read_hierarchy
from shiftlab.data.labelfiles import apply_label_sources, has_multilabels, read_labelled_dataset
from shiftlab.data.layouts import read_dataset
from shiftlab.errors import InputError
from shiftlab.metrics.multilabel import predicted_top1, problematic_mask
from shiftlab.models.specs import resolve_alias, split_spec
from shiftlab.predict.engine import predict
from shiftlab.registry import load_plugins


@dataclass
class MistakesResult:
    """The pre-categorised top-1 errors of one model on one set."""

    model: str
    dataset: str
    table: pd.DataFrame  # one row per error (``precategorize``)
    n_scored: int  # scored images (valid, label known, not problematic)
    checks: dict = field(default_factory=dict)  # which checks ran, with their parameters

    @property
    def n_errors(self) -> int:
        """The number of top-1 errors (rows of ``table``)."""
        return len(self.table)

    @property
    def top1(self) -> float:
        """Top-1 accuracy as a fraction in [0, 1]: 1 − n_errors / n_scored; NaN when ``n_scored`` is 0."""
        return 1 - self.n_errors / self.n_scored if self.n_scored else float("nan")

    def fractions(self) -> pd.Series:
        """Fraction of the errors in each category (AUTO_ORDER first, then any others)."""
        counts = self.table["category"].value_counts()
        order = [c for c in AUTO_ORDER] + [c for c in counts.index if c not in AUTO_ORDER]
        n = max(self.n_errors, 1)
        return pd.Series({c: counts.get(c, 0) / n for c in order}, name=self.model)

    def write(self, path: str | os.PathLike) -> tuple[Path, Path]:
        """The suggestions as ``*_mistakes.json`` (``write_mistakes``) and every error with its evidence as a
        ``.csv`` beside it; returns both paths."""
        p = write_mistakes(self.records(), path)
        self.table.to_csv(p.with_suffix(".csv"), index=False)
        return p, p.with_suffix(".csv")

    def records(self) -> pd.DataFrame:
        """The suggestions as mistake records (``write_mistakes`` writes them)."""
        return pd.DataFrame({"file_name": self.table["id"], "top_prediction": self.table["prediction"],
                             "category": self.table["category"], "severity": self.table["severity"]})


#: who knows more about a dataset than its vocabulary says: functions (dataset, workspace) → context dict or
#: None, asked in order of registration (``register_context``); the digits world registers one
_CONTEXTS: list[Callable] = []


def register_context(provider: Callable) -> Callable:
    """Register a function ``provider(dataset, workspace) -> dict | None`` that ``default_context`` asks first.

    It returns ``{"train": Manifest | None, "hierarchy": Hierarchy | None, "cues": dict | None}`` for the
    datasets it knows and None for the others. Returns the provider (usable as a decorator)."""
    if provider not in _CONTEXTS:
        _CONTEXTS.append(provider)
    return provider


def hierarchy_for(vocabulary) -> Hierarchy | None:
    """The class hierarchy shiftlab ships for a vocabulary: the BREEDS one for ImageNet-1k, else None."""
    return imagenet_hierarchy() if vocabulary.name == "imagenet-1k" else None


def default_context(dataset, workspace=None) -> dict:
    """What the checks of ``find_mistakes`` can use for ``dataset`` without being told: a registered context
    provider's answer (plug-ins, e.g. the digits world: its hierarchy, training set and planted cues), else
    the vocabulary's packaged hierarchy.

    Returns ``{"train": Manifest | None, "hierarchy": Hierarchy | None, "cues": dict | None}``.
    """
    load_plugins()
    for provider in _CONTEXTS:
        ctx = provider(dataset, workspace)
        if ctx is not None:
            return ctx
    return {"train": None, "hierarchy": hierarchy_for(dataset.vocabulary), "cues": None}


def find_mistakes(dataset, model: str, *, workspace=None, train=None, hierarchy: Hierarchy | None = None,
                  cues: Mapping[str, Iterable[int]] | None = None, feature_model: str | None = None, k: int = 10,
                  min_neighbours: int = 2, max_hops: int = DEFAULT_MAX_HOPS, device: str = "auto",
                  batch_size: int = 64, progress: bool = True) -> MistakesResult:
    """Pre-categorise every top-1 error of ``model`` on ``dataset`` (a Manifest).

    ``train``: the training manifest whose images are searched for neighbours, in the feature space of
    ``feature_model`` (default: ``model`` itself; precomputed predictions carry no features, so check 3 is
    then skipped). Multi-labels come from the manifest's columns when it has them.
    """

    fmodel = feature_model or model
    neighbours = train is not None and split_spec(resolve_alias(fmodel, workspace))[0] != "predictions"
    kw = dict(workspace=workspace, device=device, batch_size=batch_size, progress=progress)
    # one pass gives the logits and, when the model is its own feature model, the features too
    p = predict(dataset, [model], features=neighbours and fmodel == model, **kw)[0]
    top1 = predicted_top1(p)
    checks: dict = {}
    nb = None
    if neighbours:
        f_set = p if fmodel == model else predict(dataset, [fmodel], features=True, **kw)[0]
        f_train = predict(train, [fmodel], features=True, **kw)[0]
        keep = f_train.valid & (train.labels >= 0)
        # precategorize reads the neighbours of top-1 errors only, so only they are looked up (a tenth of the
        # images on most sets); each query row's neighbours do not depend on the other rows queried
        rows = np.flatnonzero(np.asarray(top1) != np.asarray(dataset.labels))
        nb = np.full((len(dataset), max(1, min(k, int(keep.sum())))), -1, np.int64)
        if len(rows):
            nb[rows] = nearest_training_labels(f_set.features[rows], f_train.features[keep], train.labels[keep], k)
        checks["neighbours"] = {"train": train.name, "feature_model": fmodel, "k": k, "min_neighbours": min_neighbours}
    ml = has_multilabels(dataset)
    t = dataset.table
    if ml:
        checks["multilabels"] = True
    if hierarchy is not None:
        checks["hierarchy"] = {"source": hierarchy.source, "max_hops": max_hops}
    if cues is not None:
        checks["cues"] = len(cues)
    table = precategorize(
        dataset.ids, dataset.labels, top1,
        correct=t["correct_multi_labels"].tolist() if ml else None,
        unclear=t["unclear_multi_labels"].tolist() if ml else None,
        hierarchy=hierarchy, max_hops=max_hops, neighbour_labels=nb, min_neighbours=min_neighbours,
        cues=cues, class_names=dataset.vocabulary.names, valid=p.valid,
        is_problematic=t["is_problematic"].tolist() if ml else None)
    scored = p.valid & (dataset.labels >= 0)
    if ml:
        scored &= ~problematic_mask(t["is_problematic"])
    n_scored = int(scored.sum())
    return MistakesResult(p.model, dataset.name, table, n_scored, checks)


def category_fractions(results: Sequence[MistakesResult]) -> pd.DataFrame:
    """One row per model: ``model, top1, errors`` and the fraction of its errors in each category."""
    rows = []
    for r in results:
        rows.append({"model": r.model, "top1": r.top1, "errors": r.n_errors, **r.fractions().to_dict()})
    df = pd.DataFrame(rows)
    fixed = ("model", "top1", "errors")
    cats = [c for c in AUTO_ORDER if c in df.columns] + [c for c in df.columns if c not in AUTO_ORDER + fixed]
    return df[["model", "top1", "errors", *cats]].fillna({c: 0.0 for c in cats})


# --- review -------------------------------------------------------------------------------------------------
def review_config() -> dict:
    """The configuration of the review app's per-image queue (an ``images`` task) for mistakes: one decision
    per category (the suggestion's first), each but "Not a mistake" with the three severities as reasons."""
    order = [*AUTO_ORDER, *[c for c in CATEGORIES if c not in AUTO_ORDER]]
    return {
        "title": "Which errors are real?",
        "instructions": "The model's top-1 prediction differs from the label. Is the prediction acceptable (not a "
                        "mistake), or which kind of mistake is it, and how severe? The suggestion comes from the "
                        "automatic checks; its evidence is in the caption.",
        "decisions": [{"name": c, "reasons": [] if c == NOT_A_MISTAKE else list(SEVERITIES),
                       "help": {NOT_A_MISTAKE: "the prediction is a correct label of the image",
                                FINE_GRAINED: "a close class of the same kind",
                                FINE_GRAINED_OOV: "the object's true class is not among the classes",
                                SPURIOUS: "the prediction follows something beside the object",
                                NON_PROTOTYPICAL: "an unusual instance of the labelled class",
                                MULTILABEL_OPTIONS: "fine-grained, with several acceptable labels",
                                MAJOR: "no explanation: a real error"}[c]} for c in order],
    }


def review_queue_items(table: pd.DataFrame, *, include_not_mistakes: bool = True) -> list[dict]:
    """The pre-categorised errors as review-queue items: ``id, suggested_category, severity, evidence`` (plus
    label and prediction), and ``caption`` / ``suggestion`` in the shape of the review app's ``images`` task
    (``shiftlab.review.tasks.images_task(dataset, review_config(), items=...)``)."""
    items = []
    for r in table.itertuples(index=False):
        if r.category == NOT_A_MISTAKE and not include_not_mistakes:
            continue
        sev = r.severity if isinstance(r.severity, str) else None  # NaN from pandas → None (JSON null)
        items.append({"id": str(r.id), "suggested_category": r.category, "severity": sev,
                      "evidence": r.evidence, "label": int(r.label), "label_name": str(r.label_name),
                      "prediction": int(r.prediction), "prediction_name": str(r.prediction_name),
                      "caption": f"{r.label_name} → {r.prediction_name}: {r.evidence}",
                      "suggestion": {"decision": r.category, "reason": sev}})
    return items


def apply_review_decisions(table: pd.DataFrame, decisions: Mapping, *,
                           require_all: bool = False) -> pd.DataFrame:
    """Final mistake records from the pre-categorised errors and the reviewers' folded decisions.

    ``decisions``: ``{image id: {"decision": category, "reason": severity}}``, or the review log's folded
    state ``ReviewLog.state(task)`` (image id → the event in force). A decided image takes the reviewer's
    category and severity; an undecided one keeps the suggestion, marked ``reviewed = False`` (or is an error
    with ``require_all``).
    Returns ``file_name, top_prediction, category, severity, reviewed`` (``write_mistakes`` writes it).
    """
    known = set(table["id"].astype(str))
    stray = [k for k in decisions if str(k) not in known]
    if stray:
        raise InputError(f"{len(stray)} decision(s) are for images that are not errors here (first: {stray[0]!r})")
    rows = []
    for r in table.itertuples(index=False):
        d = decisions.get(str(r.id))
        if d is None:
            if require_all:
                raise InputError(f"image {r.id!r} has no review decision yet; review every queued error first")
            rows.append((str(r.id), int(r.prediction), r.category, r.severity, False))
            continue
        if isinstance(d, Mapping):
            cat, reason = normalize_category(d.get("decision", "")), d.get("reason")
        else:  # an Event of the review log's folded state
            cat, reason = normalize_category(d.decision), d.reason
        if isinstance(reason, float) and reason != reason:  # a missing severity that went through pandas
            reason = None
        sev = None if cat == NOT_A_MISTAKE and not reason else normalize_severity(reason or "")
        rows.append((str(r.id), int(r.prediction), cat, sev, True))
    return pd.DataFrame(rows, columns=[*RECORD_COLUMNS, "reviewed"])


def read_cues(path: str | os.PathLike) -> dict[str, list[int]]:
    """A cues file: JSON ``{image id: [class, …]}``, the spurious cues each image shows."""
    try:
        raw = json.loads(Path(path).read_text())
        return {str(i): [int(c) for c in v] for i, v in raw.items()}
    except (OSError, ValueError, TypeError, AttributeError) as e:
        raise InputError(f"{path}: expected a JSON object {{image id: [class, …]}} ({e})") from None


def mistakes_study(dataset, model: str, *, labels: Sequence[str] | None = None, train=None, hierarchy=None,
                   cues=None, feature_model: str | None = None, k: int = 10, min_neighbours: int = 2,
                   max_hops: int = DEFAULT_MAX_HOPS, device: str = "auto", batch_size: int = 64,
                   workspace=None, progress: bool = True) -> MistakesResult:
    """``shiftlab mistakes``: ``find_mistakes`` with its inputs read the way the command takes them.

    dataset: a registered name, a path or a Manifest; ``labels``: label sources to attach (``real:``, ``tfds:``,
    ``imagenet-m:``). ``train`` (name, path or Manifest), ``hierarchy`` (a BREEDS folder or a Hierarchy) and
    ``cues`` (a JSON file or a dict, ``read_cues``) replace what ``default_context`` knows; the rest as
    ``find_mistakes``.
    """
    m = dataset if hasattr(dataset, "table") else read_labelled_dataset(dataset, labels, workspace=workspace)
    if labels and hasattr(dataset, "table"):
        m = apply_label_sources(m, labels)
    ctx = default_context(m, workspace)
    if hierarchy is not None:
        ctx["hierarchy"] = hierarchy if isinstance(hierarchy, Hierarchy) else read_hierarchy(
            hierarchy, n_classes=len(m.vocabulary))
    if train is not None:
        ctx["train"] = train if hasattr(train, "table") else read_dataset(train, workspace=workspace)
    if cues is not None:
        ctx["cues"] = cues if isinstance(cues, Mapping) else read_cues(cues)
    return find_mistakes(m, model, workspace=workspace, **ctx, feature_model=feature_model, k=k,
                         min_neighbours=min_neighbours, max_hops=max_hops, device=device, batch_size=batch_size,
                         progress=progress)
