"""Which errors are real (SPECS S2): mistake records, class confusions and the automatic pre-categorisation.

- Mistake records in the ``vit3b_mistakes.json`` shape of Vasudevan et al. 2022:
  ``{file name: {"top_prediction": int, "failure category": str, "failure severity": str}}``.
  ``load_mistakes`` merges the two spellings of the OOV category and can fold Borderline into Minor;
  ``save_mistakes`` writes the same shape back (sorted by file name), so a file round-trips.
- Class confusions: unordered class pairs with counts, stored with a < b (``load_confusions`` reads the
  published ``class_confusion_*.json``; ``confusion_pairs`` counts them over the top-1 errors of a model set).
- ``precategorize``: every top-1 error gets a suggested category in the order of Peychev et al. 2023 (the
  automated version of the manual review), with the evidence of each check:
  1. the prediction is in the image's correct ∪ unclear multi-labels → "Not a mistake";
  2. label and prediction share a superclass in the class hierarchy → "Fine-grained error";
  3. the prediction is among the classes of the image's nearest training images in feature space
     → "Fine-grained error with OOV" (the image looks like training images of the predicted class);
  4. the predicted class's spurious cue is present in the image (where that is known) → "Spurious Correlation";
  5. otherwise → "Major" (a candidate: a person confirms it).
  People confirm or change each suggestion in the review app: ``review_queue_items`` makes the queue,
  ``apply_review_decisions`` turns the folded decisions into the final records.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from shiftlab.data.hierarchy import DEFAULT_MAX_HOPS, Hierarchy, imagenet_hierarchy, load_hierarchy
from shiftlab.errors import InputError
from shiftlab.fsutil import atomic_write_bytes
from shiftlab.metrics.multilabel import predicted_top1, problematic_mask

NOT_A_MISTAKE = "Not a mistake"
FINE_GRAINED = "Fine-grained error"
FINE_GRAINED_OOV = "Fine-grained error with OOV"
SPURIOUS = "Spurious Correlation"
NON_PROTOTYPICAL = "Non-prototypical"
MULTILABEL_OPTIONS = "Fine-grained with Multilabel Options"
MAJOR = "Major"
#: the categories of the published records, then the two ends of the automatic order
CATEGORIES = (FINE_GRAINED, FINE_GRAINED_OOV, SPURIOUS, NON_PROTOTYPICAL, MULTILABEL_OPTIONS, MAJOR, NOT_A_MISTAKE)
#: the order in which ``precategorize`` tries them
AUTO_ORDER = (NOT_A_MISTAKE, FINE_GRAINED, FINE_GRAINED_OOV, SPURIOUS, MAJOR)
SEVERITIES = ("Major", "Minor", "Borderline")
#: suggested severities of the automatic categories (the reviewer decides)
SUGGESTED_SEVERITY = {NOT_A_MISTAKE: None, FINE_GRAINED: "Minor", FINE_GRAINED_OOV: "Minor", SPURIOUS: "Major",
                      MAJOR: "Major"}


def _key(s: str) -> str:
    return " ".join(str(s).replace("-", " ").replace("_", " ").lower().split())


#: spellings seen in the published files (greedy_soups_mistakes.json writes "Fine-grained with OOV")
_CATEGORY_ALIASES = {_key(c): c for c in CATEGORIES}
_CATEGORY_ALIASES.update({_key("Fine-grained with OOV"): FINE_GRAINED_OOV, _key("not mistake"): NOT_A_MISTAKE,
                          _key("correct"): NOT_A_MISTAKE, _key("spurious"): SPURIOUS})
_SEVERITY_ALIASES = {_key(s): s for s in SEVERITIES}


def normalize_category(name: str) -> str:
    """The canonical spelling of a mistake category; an unknown one is an ``InputError``."""
    c = _CATEGORY_ALIASES.get(_key(name))
    if c is None:
        raise InputError(f"unknown mistake category {name!r}; one of: {', '.join(CATEGORIES)}")
    return c


def normalize_severity(name: str, *, fold_borderline: bool = False) -> str:
    s = _SEVERITY_ALIASES.get(_key(name))
    if s is None:
        raise InputError(f"unknown mistake severity {name!r}; one of: {', '.join(SEVERITIES)}")
    return "Minor" if fold_borderline and s == "Borderline" else s


# --- mistake records ---------------------------------------------------------------------------------------
RECORD_COLUMNS = ["file_name", "top_prediction", "category", "severity"]


def load_mistakes(path: str | os.PathLike, *, fold_borderline: bool = False) -> pd.DataFrame:
    """Read a ``*_mistakes.json`` file: DataFrame ``file_name, top_prediction, category, severity``.

    Category spellings are merged ("Fine-grained with OOV" → "Fine-grained error with OOV");
    ``fold_borderline`` turns Borderline severities into Minor (as Vasudevan et al. do for their counts).
    """
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise InputError(f"{path}: not a readable JSON file ({e})") from None
    if not isinstance(doc, dict):
        raise InputError(f"{path}: a mistakes file maps file names to {{top_prediction, failure category, "
                         "failure severity}}")
    rows = []
    for name, rec in doc.items():
        try:
            rows.append((str(name), int(rec["top_prediction"]), normalize_category(rec["failure category"]),
                         normalize_severity(rec["failure severity"], fold_borderline=fold_borderline)))
        except (KeyError, TypeError, ValueError) as e:
            raise InputError(f"{path}: entry {name!r} lacks or mistypes {e} (needs top_prediction, "
                             "'failure category', 'failure severity')") from None
        except InputError as e:
            raise InputError(f"{path}: entry {name!r}: {e}") from None
    return pd.DataFrame(rows, columns=RECORD_COLUMNS)


def mistakes_to_json(records: pd.DataFrame, *, include_not_mistakes: bool = False) -> dict:
    """The ``vit3b_mistakes.json`` dict of a records table (sorted by file name).

    Rows categorised "Not a mistake" are left out unless asked for: the published files list mistakes only.
    """
    missing = [c for c in RECORD_COLUMNS if c not in records.columns]
    if missing:
        raise InputError(f"mistake records need the columns {', '.join(RECORD_COLUMNS)} (missing {', '.join(missing)})")
    dup = records["file_name"][records["file_name"].duplicated()]
    if len(dup):
        raise InputError(f"mistake records list {dup.iloc[0]!r} twice")
    out = {}
    for r in records.sort_values("file_name", kind="stable").itertuples(index=False):
        cat = normalize_category(r.category)
        if cat == NOT_A_MISTAKE and not include_not_mistakes:
            continue
        if r.severity is None or r.severity != r.severity:
            raise InputError(f"mistake record {r.file_name!r} has no severity; every exported mistake needs one")
        out[str(r.file_name)] = {"top_prediction": int(r.top_prediction), "failure category": cat,
                                 "failure severity": normalize_severity(r.severity)}
    return out


def save_mistakes(records: pd.DataFrame, path: str | os.PathLike, *, include_not_mistakes: bool = False) -> Path:
    """Write records as a ``*_mistakes.json`` file (atomically); ``load_mistakes`` reads it back unchanged."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = mistakes_to_json(records, include_not_mistakes=include_not_mistakes)
    atomic_write_bytes(path, (json.dumps(doc, indent=1) + "\n").encode())
    return path


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


def load_confusions(path: str | os.PathLike, vocabulary=None) -> pd.DataFrame:
    """Read a ``class_confusion_*.json`` (``[[a, b, count], …]``, a and b wnids or class names).

    Returns ``a, b, a_name, b_name, count`` with a < b: class indices from ``vocabulary`` (ImageNet-1k by
    default; −1 where a name is ambiguous, as ImageNet's two "crane"s), names as in the file.
    """
    from shiftlab.data.classes import imagenet_1k

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
    from shiftlab.metrics.multilabel import LabelSets, has_multilabels

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


def confusion_figure(pairs: pd.DataFrame, top: int = 15, *, title: str | None = None):
    """The ``top`` most frequent confusion pairs as horizontal bars (``bar_chart``)."""
    from shiftlab.report.plots import bar_chart

    if len(pairs) == 0:
        raise InputError("no confusions to plot (the models make no top-1 errors here)")
    head = pairs.head(top)
    labels = [f"{a} ↔ {b}" for a, b in zip(head.a_name, head.b_name)]
    return bar_chart(pd.Series(head["count"].to_numpy(), index=labels), title=title or "Most frequent confusions",
                     xlabel="top-1 errors (all models)", sort=False, max_bars=top)


# --- automatic pre-categorisation --------------------------------------------------------------------------
def nearest_training_labels(features: np.ndarray, train_features: np.ndarray, train_labels: np.ndarray,
                            k: int = 10) -> np.ndarray:
    """(N, k) labels of each image's k nearest training images by cosine similarity of penultimate features.

    Exact search with FAISS (inner product of L2-normalised vectors): cosine rather than L2 so that images
    with large activations do not all share the same few neighbours.
    """
    import faiss

    x = np.ascontiguousarray(np.nan_to_num(features), dtype=np.float32)
    t = np.ascontiguousarray(np.nan_to_num(train_features), dtype=np.float32)
    if x.ndim != 2 or t.ndim != 2 or x.shape[1] != t.shape[1]:
        raise InputError(f"features {x.shape} and training features {t.shape} do not have the same width")
    k = min(k, len(t))
    faiss.normalize_L2(x)
    faiss.normalize_L2(t)
    index = faiss.IndexFlatIP(t.shape[1])
    index.add(t)
    _, nn = index.search(x, k)
    return np.asarray(train_labels, np.int64)[nn]


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


@dataclass
class MistakesResult:
    """The pre-categorised top-1 errors of one model on one set."""

    model: str
    dataset: str
    table: pd.DataFrame  # one row per error (``precategorize``)
    n_images: int  # scored images (valid, label known, not problematic)
    checks: dict = field(default_factory=dict)  # which checks ran, with their parameters

    @property
    def n_errors(self) -> int:
        return len(self.table)

    @property
    def top1(self) -> float:
        return 1 - self.n_errors / self.n_images if self.n_images else float("nan")

    def fractions(self) -> pd.Series:
        """Fraction of the errors in each category (AUTO_ORDER first, then any others)."""
        counts = self.table["category"].value_counts()
        order = [c for c in AUTO_ORDER] + [c for c in counts.index if c not in AUTO_ORDER]
        n = max(self.n_errors, 1)
        return pd.Series({c: counts.get(c, 0) / n for c in order}, name=self.model)

    def records(self) -> pd.DataFrame:
        """The suggestions as mistake records (``save_mistakes`` writes them)."""
        return pd.DataFrame({"file_name": self.table["id"], "top_prediction": self.table["prediction"],
                             "category": self.table["category"], "severity": self.table["severity"]})


def world_cues(world, split: str) -> dict[str, set[int]]:
    """Which spurious cue each image of a world split shows (from the ground truth); the multilabel split
    is rendered without cues, so its images are known to show none."""
    t = world.truth(split)
    if "cue" in t.columns:
        return {str(i): ({int(c)} if c >= 0 else set()) for i, c in zip(t["id"], t["cue"])}
    if "cue_class" in t.columns:
        return {str(i): {int(c)} for i, c in zip(t["id"], t["cue_class"])}
    if split == "multilabel":
        return {str(i): set() for i in t["id"]}
    return {}


def hierarchy_for(vocabulary, workspace=None) -> Hierarchy | None:
    """The class hierarchy of a vocabulary: the packaged BREEDS one for ImageNet-1k, the world's own for the
    digits (None when the world is not built); None for other vocabularies."""
    if vocabulary.name == "imagenet-1k":
        return imagenet_hierarchy()
    if vocabulary.name == "digits":
        from shiftlab.data.world.build import world_root

        _, root = world_root(workspace)
        folder = root / "hierarchy"
        return load_hierarchy(folder, n_classes=len(vocabulary)) if folder.is_dir() else None
    return None


def default_context(dataset, workspace=None) -> dict:
    """What the checks can use for ``dataset`` without being told: the vocabulary's hierarchy, and for a
    split of the digits world its training set (neighbours) and the planted spurious cues (ground truth).

    Returns ``{"train": Manifest | None, "hierarchy": Hierarchy | None, "cues": dict | None}``.
    """
    from shiftlab.errors import ShiftlabError

    ctx = {"train": None, "hierarchy": hierarchy_for(dataset.vocabulary, workspace), "cues": None}
    if dataset.dataset == "world" and dataset.vocabulary.name == "digits":
        from shiftlab.data.world import SPLITS, load_world

        try:
            world = load_world(workspace)
        except ShiftlabError:
            return ctx
        if dataset.variant in SPLITS:
            ctx["cues"] = world_cues(world, dataset.variant) or None
            if dataset.variant != "train":  # on the training set itself every image is its own neighbour
                ctx["train"] = world.manifest("train")
    return ctx


def find_mistakes(dataset, model: str, *, workspace=None, train=None, hierarchy: Hierarchy | None = None,
                  cues: Mapping[str, Iterable[int]] | None = None, feature_model: str | None = None, k: int = 10,
                  min_neighbours: int = 2, max_hops: int = DEFAULT_MAX_HOPS, device: str = "auto",
                  batch_size: int = 64, progress: bool = True) -> MistakesResult:
    """Pre-categorise every top-1 error of ``model`` on ``dataset`` (a Manifest).

    ``train``: the training manifest whose images are searched for neighbours, in the feature space of
    ``feature_model`` (default: ``model`` itself; precomputed predictions carry no features, so check 3 is
    then skipped). Multi-labels come from the manifest's columns when it has them.
    """
    from shiftlab.metrics.multilabel import has_multilabels
    from shiftlab.models.specs import resolve_alias, split_spec
    from shiftlab.predict.engine import predict

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
        nb = nearest_training_labels(f_set.features, f_train.features[keep], train.labels[keep], k)
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


def category_fraction_figure(fractions: pd.DataFrame, *, title: str | None = None):
    """Fraction of each mistake category among a model's top-1 errors against its top-1 accuracy,
    one colour per category, one point per model (with a least-squares line per category)."""
    import matplotlib

    from shiftlab.report.plots import MARKERS, PALETTE, STYLE, _new_figure

    cats = [c for c in fractions.columns if c not in ("model", "top1", "errors")]
    if not len(fractions) or not cats:
        raise InputError("no models or no categories to plot")
    with matplotlib.rc_context(STYLE):
        fig = _new_figure((7.0, 4.6))
        ax = fig.add_subplot()
        x = fractions["top1"].to_numpy(float)
        for j, c in enumerate(cats):
            yv = fractions[c].to_numpy(float)
            col = PALETTE[j % len(PALETTE)]
            ax.plot(100 * x, 100 * yv, MARKERS[j % len(MARKERS)], color=col, label=c, ms=6, alpha=0.9)
            if len(x) >= 3 and np.ptp(x) > 0:
                slope, icpt = np.polyfit(x, yv, 1)
                xs = np.linspace(x.min(), x.max(), 2)
                ax.plot(100 * xs, 100 * (slope * xs + icpt), "-", color=col, lw=1, alpha=0.6)
        ax.set_xlabel("top-1 accuracy (%)")
        ax.set_ylabel("share of the model's top-1 errors (%)")
        ax.set_ylim(0, 100)
        ax.set_title(title or "What kind of errors, by model accuracy", loc="left")
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig


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
    Returns ``file_name, top_prediction, category, severity, reviewed`` (``save_mistakes`` writes it).
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
