"""Label files of the which-errors-are-real works (SPECS S2), read and attached to a manifest as columns.

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

``read_labelled_dataset`` reads a dataset with the label sources a command names (``real:``, ``tfds:``,
``imagenet-m:``). The metrics over these columns are ``shiftlab.metrics.multilabel``.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from shiftlab.data.layouts import read_dataset
from shiftlab.errors import InputError, LabelFileError

TFDS_FIELDS = ("file_name", "original_label", "correct_multi_labels", "wrong_multi_labels",
               "unclear_multi_labels", "is_problematic")
LIST_FIELDS = ("correct_multi_labels", "wrong_multi_labels", "unclear_multi_labels")
#: manifest columns written by ``attach_multilabels`` / ``attach_real`` (the world's multilabel split has them too)
MULTILABEL_COLUMNS = (*LIST_FIELDS, "is_problematic")
IMAGENET_M_COLUMN = "in_imagenet_m"
REAL_COLUMN = "real_labels"
REAL_SIZE = 50_000


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


def _index_list(v, where: str) -> list[int]:
    """A JSON list of class indices → list of int (a row's multi-labels)."""
    try:
        return [int(x) for x in v]
    except (TypeError, ValueError):
        raise LabelFileError(f"{where}: expected a list of class indices, got {v!r}") from None


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
            vals = _parse_list_cell(v, where) if isinstance(v, str) else _index_list([] if v is None else v, where)
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
    """Whether the manifest's table has every multi-label column (``MULTILABEL_COLUMNS``)."""
    return all(c in manifest.table.columns for c in MULTILABEL_COLUMNS)


def read_labelled_dataset(dataset, labels: Sequence[str] | None = None, *, workspace=None):
    """``read_dataset(dataset)`` with the label sources ``labels`` attached (``apply_label_sources``)."""
    m = read_dataset(dataset, workspace=workspace)
    return apply_label_sources(m, labels) if labels else m
