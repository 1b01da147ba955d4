"""Multi-label accuracy, ImageNet-M and ReaL accuracy (SPECS S2), and the label files they read.

Label sources
- TFDS ``imagenet2012_multilabel`` (Shankar et al. 2020; Vasudevan et al. 2022): one record per image with
  ``file_name, original_label, correct_multi_labels, wrong_multi_labels, unclear_multi_labels,
  is_problematic``, exported as JSON (a list of records, or ``{split: [records]}``), JSONL or CSV (list
  fields as JSON ``[1, 2]`` or space/semicolon separated), plus the ``imagenet_m`` split: a list of file
  names (JSON, JSONL records, CSV with ``file_name`` or one name per line).
- ReaL ``real.json`` (Beyer et al. 2020): 50,000 lists of class indices, entry i for
  ``ILSVRC2012_val_{i+1:08d}.JPEG``; an empty list means that no label fits (the image is dropped).

Labels are attached to a manifest as columns (``correct_multi_labels``, … , ``in_imagenet_m``,
``real_labels``), matched by file name (exactly, or without the extension), never by position: a label file
in another order than the loader's cannot silently score the wrong images. Rows without labels hold None.

Metrics (arrays in, small results out; ties in scores go to the lowest class index)
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

import csv
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from shiftlab.errors import InputError
from shiftlab.metrics.accuracy import topk_indices

TFDS_FIELDS = ("file_name", "original_label", "correct_multi_labels", "wrong_multi_labels",
               "unclear_multi_labels", "is_problematic")
LIST_FIELDS = ("correct_multi_labels", "wrong_multi_labels", "unclear_multi_labels")
#: manifest columns written by ``attach_multilabels`` / ``attach_real`` (the world's multilabel split has them too)
MULTILABEL_COLUMNS = (*LIST_FIELDS, "is_problematic")
IMAGENET_M_COLUMN = "in_imagenet_m"
REAL_COLUMN = "real_labels"
REAL_SIZE = 50_000


class LabelFileError(InputError):
    """A label file is malformed, repeats an image, names a class out of range, or does not fit the set."""


# --- label sets: a compact membership test for N small sets ------------------------------------------------
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
        return self.sizes >= 0

    @property
    def empty(self) -> np.ndarray:
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
        if len(other) != len(self) or other.n_classes != self.n_classes:
            raise ValueError("label sets of different shapes")
        codes = np.union1d(self.codes, other.codes)
        rows = codes // self.n_classes
        sizes = np.bincount(rows, minlength=len(self)).astype(np.int64)
        sizes[~(self.labelled | other.labelled)] = -1
        return LabelSets(codes, sizes, self.n_classes)


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


# --- readers -----------------------------------------------------------------------------------------------
def _load_json_or_jsonl(path: Path) -> object:
    try:
        text = path.read_text()
    except OSError as e:
        raise LabelFileError(f"{path}: cannot read ({e})") from None
    if path.suffix.lower() == ".jsonl":
        out = []
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                out.append(json.loads(line))
            except ValueError as e:
                raise LabelFileError(f"{path}:{n}: not a JSON record ({e})") from None
        return out
    try:
        return json.loads(text)
    except ValueError as e:
        raise LabelFileError(f"{path}: not valid JSON ({e})") from None


def _parse_list_cell(s: str, where: str) -> list[int]:
    s = s.strip()
    if not s:
        return []
    try:
        if s.startswith("["):
            return [int(x) for x in json.loads(s)]
        return [int(x) for x in s.replace(";", " ").replace(",", " ").split()]
    except (ValueError, TypeError):
        raise LabelFileError(f"{where}: {s!r} is not a list of class indices") from None


def _parse_bool(v, where: str) -> bool:
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)) and v in (0, 1):
        return bool(v)
    s = str(v).strip().lower()
    if s in ("true", "1", "yes"):
        return True
    if s in ("false", "0", "no", ""):
        return False
    raise LabelFileError(f"{where}: is_problematic must be true/false, got {v!r}")


def read_tfds_multilabel(path: str | os.PathLike, *, n_classes: int | None = None,
                         split: str = "validation") -> pd.DataFrame:
    """Read a TFDS ``imagenet2012_multilabel`` export (JSON, JSONL or CSV).

    Parameters
    ----------
    path : path
        ``.json`` (a list of records, ``{split: [records]}``, or ``{file_name: record}``), ``.jsonl`` or ``.csv``.
    n_classes : int, optional
        Class indices must lie in ``0 … n_classes − 1`` (checked when given).
    split : str, default "validation"
        The split to read from a JSON file keyed by split.

    Returns
    -------
    DataFrame with the columns of ``TFDS_FIELDS``, one row per image in file order: list fields as sorted
    lists of int, ``is_problematic`` as bool.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".json", ".jsonl"):
        doc = _load_json_or_jsonl(path)
        if isinstance(doc, dict):
            if split in doc and isinstance(doc[split], list):
                doc = doc[split]
            elif all(isinstance(v, dict) for v in doc.values()):
                doc = [{"file_name": k, **v} for k, v in doc.items()]
            else:
                raise LabelFileError(f"{path}: a JSON object must map splits to record lists (no {split!r}) "
                                     "or file names to records")
        if not isinstance(doc, list) or not all(isinstance(r, dict) for r in doc):
            raise LabelFileError(f"{path}: expected a list of records with {', '.join(TFDS_FIELDS)}")
        records = doc
    elif suffix == ".csv":
        try:
            with open(path, newline="") as f:
                records = list(csv.DictReader(f))
        except (OSError, csv.Error, UnicodeDecodeError) as e:
            raise LabelFileError(f"{path}: not a readable CSV ({e})") from None
    else:
        raise LabelFileError(f"{path}: unsupported label file type {suffix or '(none)'}; use .json, .jsonl or .csv")
    if not records:
        raise LabelFileError(f"{path}: no records")
    missing = [k for k in TFDS_FIELDS if k not in records[0]]
    if missing:
        raise LabelFileError(f"{path}: records lack {', '.join(missing)} (the TFDS imagenet2012_multilabel fields)")
    rows = []
    for n, r in enumerate(records, 1):
        where = f"{path} record {n}"
        try:
            row = {"file_name": str(r["file_name"]), "original_label": int(r["original_label"])}
        except KeyError as e:
            raise LabelFileError(f"{where}: lacks {e.args[0]}") from None
        except (TypeError, ValueError):
            raise LabelFileError(f"{where}: original_label {r.get('original_label')!r} is not a class index") from None
        for k in LIST_FIELDS:
            v = r.get(k)
            vals = _parse_list_cell(v, where) if isinstance(v, str) else _as_labels([] if v is None else v)
            row[k] = sorted(set(vals))
        row["is_problematic"] = _parse_bool(r.get("is_problematic"), where)
        rows.append(row)
    df = pd.DataFrame(rows, columns=list(TFDS_FIELDS))
    _check_unique(df["file_name"], path)
    if n_classes is not None:
        _check_range(df, n_classes, path)
    return df


def _check_unique(names: pd.Series, path) -> None:
    dup = names[names.duplicated()]
    if len(dup):
        raise LabelFileError(f"{path}: {len(dup)} duplicate file name(s), e.g. {dup.iloc[0]!r}")


def _check_range(df: pd.DataFrame, n_classes: int, path) -> None:
    for col in ("original_label", *LIST_FIELDS):
        vals = df[col] if col == "original_label" else df[col].explode().dropna()
        vals = vals.astype(np.int64) if len(vals) else vals
        bad = vals[(vals < 0) | (vals >= n_classes)] if len(vals) else vals
        if len(bad):
            i = bad.index[0]
            raise LabelFileError(f"{path}: {col} of {df['file_name'].iloc[i]} names class {int(bad.iloc[0])}, "
                                 f"outside 0..{n_classes - 1}")


def read_imagenet_m(path: str | os.PathLike) -> list[str]:
    """The file names of the ImageNet-M split: JSON list (of names or records), JSONL records, CSV with a
    ``file_name`` column, or plain text with one name per line."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".json", ".jsonl"):
        doc = _load_json_or_jsonl(path)
        if isinstance(doc, dict) and "imagenet_m" in doc:
            doc = doc["imagenet_m"]
        if not isinstance(doc, list):
            raise LabelFileError(f"{path}: expected a list of file names or records")
        names = [str(r["file_name"]) if isinstance(r, dict) and "file_name" in r else r for r in doc]
        if not all(isinstance(n, str) for n in names):
            raise LabelFileError(f"{path}: every entry must be a file name or a record with file_name")
    elif suffix == ".csv":
        try:
            df = pd.read_csv(path, dtype=str)
        except (OSError, ValueError) as e:
            raise LabelFileError(f"{path}: not a readable CSV ({e})") from None
        if "file_name" not in df.columns:
            raise LabelFileError(f"{path}: the ImageNet-M CSV needs a file_name column")
        names = df["file_name"].tolist()
    else:
        try:
            names = [s.strip() for s in path.read_text().splitlines() if s.strip()]
        except OSError as e:
            raise LabelFileError(f"{path}: cannot read ({e})") from None
    if not names:
        raise LabelFileError(f"{path}: the ImageNet-M list is empty")
    _check_unique(pd.Series(names), path)
    return names


def real_file_name(i: int) -> str:
    """The ImageNet validation file of ``real.json`` entry i (0-based)."""
    return f"ILSVRC2012_val_{i + 1:08d}.JPEG"


def read_real(path: str | os.PathLike, *, n_classes: int = 1000) -> pd.DataFrame:
    """Read ReaL's ``real.json``: DataFrame ``file_name, real_labels`` (sorted lists; empty = no label fits)."""
    path = Path(path)
    doc = _load_json_or_jsonl(path)
    if not isinstance(doc, list) or not all(isinstance(s, list) for s in doc):
        raise LabelFileError(f"{path}: real.json is a list of {REAL_SIZE:,} lists of class indices")
    if len(doc) > REAL_SIZE:
        raise LabelFileError(f"{path}: {len(doc):,} entries but the ImageNet validation set has {REAL_SIZE:,} images "
                             f"(entry {REAL_SIZE + 1} would be out of range)")
    sets = []
    for i, s in enumerate(doc):
        try:
            vals = sorted({int(x) for x in s})
        except (TypeError, ValueError):
            raise LabelFileError(f"{path}: entry {i} ({real_file_name(i)}) is not a list of class indices") from None
        if vals and (vals[0] < 0 or vals[-1] >= n_classes):
            raise LabelFileError(f"{path}: entry {i} ({real_file_name(i)}) names class "
                                 f"{vals[0] if vals[0] < 0 else vals[-1]}, outside 0..{n_classes - 1}")
        sets.append(vals)
    return pd.DataFrame({"file_name": [real_file_name(i) for i in range(len(sets))], REAL_COLUMN: sets})


# --- attaching labels to a manifest -----------------------------------------------------------------------
def match_file_names(manifest_ids: Iterable[str], file_names: Iterable[str], where: str) -> np.ndarray:
    """For each file name, the position of its manifest image, or −1 when the manifest has none.

    A name matches an id exactly, or the id's base name, or both without their extensions ("x.JPEG" vs "x",
    "ml-0001.png" vs "ml-0001"); keys that several manifest images share never match. Two label rows that
    reach the same image are an error.
    """
    ids = [str(i) for i in manifest_ids]
    names = [str(n) for n in file_names]
    exact = {k: i for i, k in enumerate(ids)}
    loose: dict[str, int] = {}
    clash: set[str] = set()
    for i, k in enumerate(ids):
        p = Path(k)
        for key in {p.name, p.stem, Path(p.name).stem}:
            if key in loose and loose[key] != i:
                clash.add(key)
            loose.setdefault(key, i)
    for key in clash:
        del loose[key]
    pos = np.full(len(names), -1, np.int64)
    for j, n in enumerate(names):
        i = exact.get(n)
        if i is None:
            p = Path(n)
            i = loose.get(p.name, loose.get(p.stem))
        if i is not None:
            pos[j] = i
    hit = pos[pos >= 0]
    if len(np.unique(hit)) < len(hit):
        s = pd.Series(pos)
        first = s[(s >= 0) & s.duplicated(keep=False)]
        raise LabelFileError(f"{where}: several label entries ({', '.join(names[k] for k in first.index[:2])}) "
                             f"match the image {ids[int(first.iloc[0])]!r}; keep one entry per image")
    return pos


def _put_column(table: pd.DataFrame, col: str, pos: np.ndarray, values: list, fill=None) -> None:
    out = [fill] * len(table)
    for p, v in zip(pos, values):
        if p >= 0:
            out[int(p)] = v
    table[col] = pd.Series(out, index=table.index, dtype=object)


def attach_multilabels(manifest, labels: pd.DataFrame | str | os.PathLike, *,
                       imagenet_m: Sequence[str] | str | os.PathLike | None = None,
                       extra: str = "error", check_original: bool = True):
    """A copy of ``manifest`` with the TFDS multi-label columns, matched by file name.

    Parameters
    ----------
    manifest : Manifest
    labels : DataFrame from ``read_tfds_multilabel``, or a path to read
    imagenet_m : list of file names or a path (``read_imagenet_m``), optional
        Sets the bool column ``in_imagenet_m``; every name must be an image with multi-labels.
    extra : {"error", "ignore"}, default "error"
        Label records for images that are not in the manifest: an error (the labels belong to another set),
        or ignored.
    check_original : bool, default True
        A record's ``original_label`` must equal the manifest's label (else the files do not belong together).

    Images without a record keep None in the new columns (the TFDS set labels 20,000 of the 50,000
    validation images); the metrics score only labelled rows and say how many there are.
    """
    n_classes = len(manifest.vocabulary)
    where = f"multi-labels for {manifest.name}"
    if not isinstance(labels, pd.DataFrame):
        where = f"{labels} vs {manifest.name}"
        labels = read_tfds_multilabel(labels, n_classes=n_classes)
    else:
        _check_unique(labels["file_name"], where)
        _check_range(labels.reset_index(drop=True), n_classes, where)
    labels = labels.reset_index(drop=True)
    pos = match_file_names(manifest.ids, labels["file_name"], where)
    _reject_unmatched(pos, labels["file_name"], extra, where, manifest)
    if check_original:
        own = manifest.labels[pos[pos >= 0]]
        theirs = labels["original_label"].to_numpy(np.int64)[pos >= 0]
        bad = np.flatnonzero((own != theirs) & (own >= 0))
        if len(bad):
            k = int(np.flatnonzero(pos >= 0)[bad[0]])
            raise LabelFileError(f"{where}: {len(bad)} image(s) have another original_label than the manifest's label "
                                 f"(first: {labels['file_name'].iloc[k]}: {int(theirs[bad[0]])} vs {int(own[bad[0]])});"
                                 " the label file belongs to another set or vocabulary")
    # an ImageNet-M flag of labels the manifest carried before belongs to those labels, not to these
    t = manifest.table.drop(columns=[IMAGENET_M_COLUMN], errors="ignore")
    for col in LIST_FIELDS:
        _put_column(t, col, pos, labels[col].tolist())
    _put_column(t, "is_problematic", pos, [bool(x) for x in labels["is_problematic"]])
    if imagenet_m is not None:
        names = imagenet_m if isinstance(imagenet_m, (list, tuple)) else read_imagenet_m(imagenet_m)
        mpos, flag = _imagenet_m_flag(manifest, names, f"ImageNet-M list vs {manifest.name}")
        unlabelled = [names[j] for j, p in enumerate(mpos) if t["is_problematic"].iloc[p] is None]
        if unlabelled:
            raise LabelFileError(f"ImageNet-M list: {len(unlabelled)} image(s) have no multi-labels "
                                 f"(first: {unlabelled[0]}); the split is a subset of the labelled images")
        t[IMAGENET_M_COLUMN] = flag
    params = {**manifest.parameters, "multilabels": {"records": len(labels), "matched": int((pos >= 0).sum()),
                                                     "imagenet_m": None if imagenet_m is None else len(names)}}
    return replace(manifest, table=t, parameters=params)


def attach_real(manifest, real: pd.DataFrame | str | os.PathLike, *, missing: str = "error"):
    """A copy of ``manifest`` with the ``real_labels`` column from ReaL's ``real.json``, matched by file name.

    ``missing``: manifest images that are not ImageNet validation files are an error (``"error"``), or keep
    None (``"ignore"``). real.json covers all 50,000 validation images, so entries for images outside the
    manifest (a subset of the validation set) are fine.
    """
    where = f"ReaL labels vs {manifest.name}"
    if not isinstance(real, pd.DataFrame):
        where = f"{real} vs {manifest.name}"
        real = read_real(real, n_classes=len(manifest.vocabulary))
    real = real.reset_index(drop=True)
    pos = match_file_names(manifest.ids, real["file_name"], where)
    have = np.zeros(len(manifest), bool)
    have[pos[pos >= 0]] = True
    if missing == "error" and not have.all():
        first = manifest.ids[~have][0]
        raise LabelFileError(f"{where}: {int((~have).sum())} of {len(manifest)} images are not ImageNet validation "
                             f"files of real.json (first: {first!r}); ReaL labels only the ILSVRC2012_val_* images")
    t = manifest.table.copy()
    _put_column(t, REAL_COLUMN, pos, real[REAL_COLUMN].tolist())
    params = {**manifest.parameters, "real": {"matched": int(have.sum())}}
    return replace(manifest, table=t, parameters=params)


def _imagenet_m_flag(manifest, names: Sequence[str], where: str) -> tuple[np.ndarray, np.ndarray]:
    """The manifest rows of the ImageNet-M file ``names`` (each must be one of its images) and the bool
    ``in_imagenet_m`` column they give."""
    pos = match_file_names(manifest.ids, names, where)
    _reject_unmatched(pos, pd.Series(names), "error", where, manifest)
    flag = np.zeros(len(manifest), bool)
    flag[pos] = True
    return pos, flag


def _reject_unmatched(pos: np.ndarray, names: pd.Series, extra: str, where: str, manifest) -> None:
    if extra not in ("error", "ignore"):
        raise ValueError(f"extra must be 'error' or 'ignore', not {extra!r}")
    lost = np.flatnonzero(pos < 0)
    if len(lost) and extra == "error":
        raise LabelFileError(f"{where}: {len(lost)} labelled file(s) are not images of {manifest.name} "
                             f"(first: {names.iloc[lost[0]]!r}); labels are matched by file name")


LABEL_SOURCES = ("real", "tfds", "imagenet-m")


def apply_label_sources(manifest, specs: Sequence[str]):
    """Attach ``real:PATH``, ``tfds:PATH`` and ``imagenet-m:PATH`` label sources (the ``--labels`` option)."""
    parsed = []
    for s in specs:
        kind, sep, path = s.partition(":")
        if not sep or kind not in LABEL_SOURCES or not path:
            raise InputError(f"--labels {s!r}: give real:PATH (ReaL real.json), tfds:PATH (TFDS "
                             "imagenet2012_multilabel JSON/JSONL/CSV) or imagenet-m:PATH (the ImageNet-M list)")
        if not Path(path).expanduser().is_file():
            raise InputError(f"--labels {s}: no such file {path}")
        parsed.append((kind, Path(path).expanduser()))
    kinds = [k for k, _ in parsed]
    for k in set(kinds):
        if kinds.count(k) > 1:
            raise InputError(f"--labels: {k}: given {kinds.count(k)} times; give each label source once")
    src = dict(parsed)
    if "imagenet-m" in src and "tfds" not in src and not has_multilabels(manifest):
        raise InputError("--labels imagenet-m:… needs the multi-labels too (tfds:PATH)")
    if "tfds" in src:
        manifest = attach_multilabels(manifest, src["tfds"], imagenet_m=src.get("imagenet-m"))
    elif "imagenet-m" in src:  # the manifest carries multi-labels already
        _, flag = _imagenet_m_flag(manifest, read_imagenet_m(src["imagenet-m"]),
                                   f"{src['imagenet-m']} vs {manifest.name}")
        manifest = replace(manifest, table=manifest.table.assign(**{IMAGENET_M_COLUMN: flag}))
    if "real" in src:
        manifest = attach_real(manifest, src["real"])
    return manifest


def has_multilabels(manifest) -> bool:
    return all(c in manifest.table.columns for c in MULTILABEL_COLUMNS)


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
    correct: int
    size: int

    def __str__(self) -> str:
        return f"{self.correct}/{self.size}"


@dataclass(frozen=True)
class ReaLAccuracy:
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
