"""``predictions:<path>[#array]``: logits, probabilities or top-k indices computed elsewhere.

Formats: ``.npy`` (one array, rows in the manifest's order); ``.npz`` (several arrays: pick one with
``#name``; an array named ``ids``/``id``/``file_name`` keys the rows by image id); ``.csv``/``.parquet``
(an ``id``/``file_name`` column keys the rows; columns ``top1 … topk`` hold top-k indices, otherwise the
numeric columns are the scores of classes 0 … K-1).

Kinds are told apart by content: integers are top-k indices (column 0 = top-1); floats that are
non-negative and sum to 1 per row are probabilities; other floats are logits.

Alignment with a manifest is by id when the file has ids — missing, duplicate and unknown ids are
errors — and otherwise by position with the row count checked.
"""

from __future__ import annotations

import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from shiftlab.errors import InputError, PredictionMismatchError

ID_NAMES = ("ids", "id", "image_id", "image_ids", "file_name", "file_names", "filename")
_TOPK_COL = re.compile(r"^top_?(\d+)$", re.IGNORECASE)


@dataclass
class AlignedPredictions:
    """Predictions in a manifest's row order. ``values`` is (N, K) scores or (N, k) top-k indices."""

    kind: str  # "logits" | "probabilities" | "topk"
    values: np.ndarray


@dataclass
class PrecomputedPredictions:
    """Predictions read from a file by a ``predictions:`` spec, not yet aligned with a manifest.

    ``name``: the array's name or the file's stem. ``kind``: ``logits``, ``probabilities`` or ``topk``.
    ``values``: (N, K) float scores or (N, k) int64 class indices (column 0 = top-1). ``ids``: (N,) image ids, or
    None when the rows are in the manifest's order.
    """

    name: str
    spec: str
    kind: str
    values: np.ndarray
    ids: np.ndarray | None

    @property
    def key(self) -> str:
        """The spec string: what identifies these predictions."""
        return self.spec

    def align(self, manifest) -> AlignedPredictions:
        """The values in ``manifest``'s row order: by id when the file has ids (extensions ignored if needed), else by
        position. Raises ``PredictionMismatchError`` when classes, row counts or ids do not match the manifest.
        """
        n_classes = len(manifest.vocabulary)
        where = f"{self.spec} vs {manifest.name}"
        if self.kind == "topk":
            bad = (self.values < 0) | (self.values >= n_classes)
            if bad.any():
                v = int(self.values[bad][0])
                raise PredictionMismatchError(f"{where}: class index {v} is outside 0..{n_classes - 1}")
        elif self.values.shape[1] != n_classes:
            raise PredictionMismatchError(f"{where}: {self.values.shape[1]} class scores per row but the "
                                          f"manifest has {n_classes} classes ({manifest.vocabulary.name})")
        if self.ids is None:
            if len(self.values) != len(manifest):
                raise PredictionMismatchError(
                    f"{where}: {len(self.values)} rows but the manifest has {len(manifest)} images; "
                    "a file without ids must list the manifest's images in order")
            return AlignedPredictions(self.kind, self.values)
        return AlignedPredictions(self.kind, self.values[_match_ids(self.ids, manifest.ids, where)])


def _match_ids(file_ids: np.ndarray, manifest_ids: np.ndarray, where: str) -> np.ndarray:
    file_ids = np.asarray([str(i) for i in file_ids], dtype=object)
    s = pd.Series(file_ids)
    dup = s[s.duplicated()]
    if len(dup):
        raise PredictionMismatchError(f"{where}: {len(dup)} duplicate id(s) in the predictions, e.g. {dup.iloc[0]!r}")
    pos = {k: i for i, k in enumerate(file_ids)}
    idx = [pos.get(str(m)) for m in manifest_ids]
    if any(i is None for i in idx):
        # ids written with and without the file extension ("x.JPEG" vs "x") still match, if uniquely
        stem_pos = {Path(k).stem: i for i, k in enumerate(file_ids)}
        if len(stem_pos) == len(file_ids):
            alt = [pos.get(str(m), stem_pos.get(Path(str(m)).stem)) for m in manifest_ids]
            if all(i is not None for i in alt):
                idx = alt
    missing = [str(m) for m, i in zip(manifest_ids, idx) if i is None]
    if missing:
        raise PredictionMismatchError(f"{where}: {len(missing)} manifest image(s) have no prediction "
                                      f"(first: {missing[0]!r})")
    used = set(idx)
    if len(used) < len(idx):  # manifest ids are unique, so two of them matched one row by their stem
        shared = pd.Series(idx)
        first = int(shared[shared.duplicated()].iloc[0])
        raise PredictionMismatchError(f"{where}: several manifest images match the prediction {file_ids[first]!r} "
                                      "once file extensions are ignored; use ids with extensions")
    if len(used) != len(file_ids):
        extra = [file_ids[i] for i in range(len(file_ids)) if i not in used]
        raise PredictionMismatchError(f"{where}: {len(extra)} id(s) in the predictions are not in the manifest "
                                      f"(first: {extra[0]!r})")
    return np.asarray(idx, dtype=np.int64)


def infer_kind(values: np.ndarray) -> str:
    """The kind of an (N, K) array by content: integers → ``topk``; floats in [0, 1] whose rows sum to 1 (± 1e-3)
    → ``probabilities``; other floats → ``logits``. ``InputError`` for non-numbers, NaN or infinite values.
    """
    if np.issubdtype(values.dtype, np.integer):
        return "topk"
    if not np.issubdtype(values.dtype, np.floating):
        raise InputError(f"predictions must be numbers, not {values.dtype}")
    v = values.astype(np.float64)
    if not np.isfinite(v).all():
        raise InputError("predictions contain NaN or infinite values")
    if v.min() >= 0 and v.max() <= 1 and np.allclose(v.sum(axis=1), 1.0, atol=1e-3):
        return "probabilities"
    return "logits"


def _ids_from(names, get) -> tuple[np.ndarray | None, str | None]:
    for n in ID_NAMES:
        if n in names:
            return np.asarray(get(n)).astype(str).astype(object), n
    return None, None


def _check_npy_header(f, size: int, what: str, spec: str) -> None:
    """Read an .npy header from ``f`` and refuse an array the ``size`` bytes after it cannot hold (a header that
    claims (10**12, 2) would otherwise be allocated before the data is found missing)."""
    try:
        fmt = np.lib.format
        version = fmt.read_magic(f)
        read = {(1, 0): fmt.read_array_header_1_0, (2, 0): fmt.read_array_header_2_0}.get(version)
        if read is None:
            raise ValueError(f".npy format version {version} (this reader knows 1.0 and 2.0)")
        shape, _, dtype = read(f)
    except (ValueError, OSError, EOFError) as e:
        raise InputError(f"{spec}: {what} is not a readable .npy array ({' '.join(str(e).split())[:100]})") from None
    if dtype.hasobject:
        raise InputError(f"{spec}: {what} holds Python objects; save numbers (np.save without pickles)")
    need = int(np.prod(shape, dtype=object)) * dtype.itemsize
    if need > size - f.tell():
        raise InputError(f"{spec}: {what} claims shape {shape} ({need:,} bytes) but holds {size - f.tell():,}; "
                         "the file is truncated or corrupt")


def _read(path: Path, array: str | None, spec: str) -> tuple[np.ndarray, np.ndarray | None]:
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            if array:
                raise InputError(f"{spec}: a .npy file holds one array; drop '#{array}'")
            with open(path, "rb") as f:
                _check_npy_header(f, path.stat().st_size, path.name, spec)
            return np.load(path, allow_pickle=False), None
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                for info in z.zip.infolist():  # every member's header checked before any array is loaded
                    with z.zip.open(info) as f:
                        _check_npy_header(f, info.file_size, f"{path.name}:{info.filename}", spec)
                names = list(z.files)
                ids, id_name = _ids_from(names, lambda n: z[n])
                arrays = [n for n in names if n != id_name]
                if array is None:
                    if len(arrays) != 1:
                        shown = ", ".join(arrays[:8]) + (" …" if len(arrays) > 8 else "")
                        raise InputError(f"{spec}: the file holds {len(arrays)} arrays ({shown}); "
                                         f"address one as predictions:{path}#<name>")
                    array = arrays[0]
                if array not in arrays:
                    raise InputError(f"{spec}: no array {array!r} in {path.name} (has {', '.join(arrays[:8])})")
                return z[array], ids
        if suffix in (".csv", ".parquet"):
            if array:
                raise InputError(f"{spec}: '#name' addresses arrays in an .npz, not columns of a table")
            # ids stay text: "0007" or "1e3" read as numbers would no longer match the manifest
            df = pd.read_csv(path, dtype={n: str for n in ID_NAMES}) if suffix == ".csv" else pd.read_parquet(path)
            ids, id_name = _ids_from(list(df.columns), lambda n: df[n])
            cols = [c for c in df.columns if c != id_name]
            topk = sorted((int(m.group(1)), c) for c in cols if (m := _TOPK_COL.fullmatch(str(c))))
            if topk:
                t = df[[c for _, c in topk]].apply(pd.to_numeric, errors="coerce")
                # an empty cell read as int64 became class -9223372036854775808; a huge one overflowed
                bad = t.isna() | (t < 0) | (t >= 2**31) | (t % 1 != 0)
                if bad.to_numpy().any():
                    r, c = np.argwhere(bad.to_numpy())[0]
                    cell = df[t.columns[c]].iloc[r]
                    shown = "an empty cell" if pd.isna(cell) else repr(str(cell)[:30])
                    raise InputError(f"{spec}: row {r + 2}, column {t.columns[c]}: {shown} is not a class index")
                return t.to_numpy(dtype=np.int64), ids
            num = df[cols].select_dtypes("number")
            if num.shape[1] != len(cols):
                other = [c for c in cols if c not in num.columns]
                raise InputError(f"{spec}: non-numeric column(s) {', '.join(map(str, other[:3]))}; expected an "
                                 "id column plus class scores or top1…topk")
            return num.to_numpy(), ids
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError, OverflowError) as e:
        # truncated (EOFError), not a zip (BadZipFile), a member missing from a damaged archive (KeyError)
        raise InputError(f"{spec}: cannot read {path.name} ({type(e).__name__}: "
                         f"{' '.join(str(e).split())[:120]})") from None
    raise InputError(f"{spec}: unsupported file type {suffix!r}; use .npy, .npz, .csv or .parquet")


def load(rest: str, *, spec: str, workspace=None) -> PrecomputedPredictions:
    """``predictions:<path>[#array]`` → PrecomputedPredictions (formats: see the module docstring).

    A 1-d array becomes one column. Raises ``InputError`` when the file is missing or unreadable, the array is
    not 2-d or empty, or the ids do not match the rows in number.
    """
    file, _, array = rest.partition("#")
    path = Path(file).expanduser()
    if not path.is_file():
        raise InputError(f"{spec}: no such file {path}")
    values, ids = _read(path, array or None, spec)
    if values.ndim == 1:
        values = values[:, None]
    if values.ndim != 2 or 0 in values.shape:
        raise InputError(f"{spec}: expected a 2-d array (images × classes or × k), got shape {values.shape}")
    if ids is not None and len(ids) != len(values):
        raise InputError(f"{spec}: {len(ids)} ids for {len(values)} rows")
    kind = infer_kind(values)
    if kind == "topk":
        values = values.astype(np.int64)
    name = array or path.stem
    return PrecomputedPredictions(name=name, spec=spec, kind=kind, values=values, ids=ids)
