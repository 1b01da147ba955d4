"""The Manifest: an ordered, immutable table of images plus metadata, stored as Parquet.

Columns: ``id`` (unique str), ``path`` (relative to ``root``; None for a labels-only manifest),
``sha256`` (of the file bytes; None when there is no file), ``label`` (class index, -1 = unknown), then
any attribute columns (selection frequency, source id, multi-labels, …).

Metadata (stored in the Parquet schema under the key ``shiftlab``): name, dataset, variant, revision,
parent, seed, vocabulary, parameters, root, and ``content_hash`` — a hash of the rows and the metadata
that define the test set (not of ``root``: moving the images keeps the hash).
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from shiftlab.data.classes import Vocabulary, imagenet_1k
from shiftlab.errors import InputError

CORE_COLUMNS = ("id", "path", "sha256", "label")
_META_KEY = b"shiftlab"
FORMAT_VERSION = 1


#: manifests this process has read, by file (path, mtime, size, inode): a demo reads the same few files dozens of
#: times, and building a Manifest (its checks and dtypes) again each time cost a second and a half of a rerun. A
#: rewritten file has another identity and is read anew.
_READ: dict[tuple, Manifest] = {}
_READ_MAX = 64


def _json_default(o):
    # seeds and parameters often come out of numpy; str() would turn np.int64(5) into "5" for good
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


@dataclass(frozen=True, eq=False)
class Manifest:
    """The ordered, immutable table of images of a test set, plus the metadata that defines it.

    ``table``: ``id``, ``path``, ``sha256``, ``label`` (class index of ``vocabulary``, −1 = unknown), then
    attribute columns (see the module docstring). ``root``: the folder ``path`` is relative to (None for a
    labels-only manifest; stored resolved). ``dataset``, ``variant``, ``revision`` name it as
    ``<dataset>-<variant>-<revision>``; ``parent`` is the manifest it came from. Raises ``InputError`` when a core
    column is missing, an id repeats or a label is outside the vocabulary.
    """

    table: pd.DataFrame
    name: str
    vocabulary: Vocabulary = field(default_factory=imagenet_1k)
    root: str | None = None
    dataset: str | None = None
    variant: str | None = None
    revision: str | None = None
    parent: str | None = None
    seed: int | None = None
    parameters: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        t = self.table
        missing = [c for c in CORE_COLUMNS if c not in t.columns]
        if missing:
            raise InputError(f"manifest {self.name!r} lacks column(s) {', '.join(missing)}")
        t = t.reset_index(drop=True)
        t = t[list(CORE_COLUMNS) + [c for c in t.columns if c not in CORE_COLUMNS]]
        t["id"] = t["id"].astype(str)
        t["label"] = t["label"].astype("int64")
        for c in ("path", "sha256"):
            t[c] = t[c].astype(object).where(t[c].notna(), None)
        dup = t["id"][t["id"].duplicated()]
        if len(dup):
            raise InputError(f"manifest {self.name!r} has {len(dup)} duplicate id(s), e.g. {dup.iloc[0]!r}")
        bad = t["label"][(t["label"] < -1) | (t["label"] >= len(self.vocabulary))]
        if len(bad):
            raise InputError(f"manifest {self.name!r}: label {int(bad.iloc[0])} is outside the "
                             f"{self.vocabulary.name} vocabulary (0..{len(self.vocabulary) - 1})")
        if self.root is not None:
            object.__setattr__(self, "root", str(Path(self.root).resolve()))
        object.__setattr__(self, "table", t)
        object.__setattr__(self, "parameters", dict(self.parameters))

    # --- access -------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.table)

    def __repr__(self) -> str:
        return (f"Manifest({self.name!r}, {len(self)} images, {self.vocabulary.name} "
                f"[{len(self.vocabulary)} classes], hash {self.content_hash[:12]})")

    @property
    def ids(self) -> np.ndarray:
        """(N,) object array of the image ids, in order."""
        return self.table["id"].to_numpy(dtype=object)

    @property
    def labels(self) -> np.ndarray:
        """(N,) int64 array of the labels (class indices; −1 = unknown)."""
        return self.table["label"].to_numpy(dtype=np.int64)

    @property
    def has_images(self) -> bool:
        """Whether there are image files to read: a ``root`` and a ``path`` on every row."""
        return self.root is not None and self.table["path"].notna().all()

    def abspaths(self) -> list[Path]:
        """The absolute path of every image, in order; ``InputError`` for a labels-only manifest."""
        if not self.has_images:
            raise InputError(f"manifest {self.name!r} has labels only (no image root); "
                             "give --root or use precomputed predictions")
        root = Path(self.root)
        return [root / p for p in self.table["path"]]

    def with_root(self, root: str | os.PathLike) -> Manifest:
        """A copy whose images are read from ``root``; the rows and ``content_hash`` stay the same."""
        return replace(self, root=str(root))

    def subset(self, mask_or_index, name: str | None = None) -> Manifest:
        """Rows by boolean mask or by positions (in the given order); ``parent`` becomes this manifest."""
        sel = np.asarray(mask_or_index)
        t = self.table[sel] if sel.dtype == bool else self.table.iloc[sel]
        return replace(self, table=t.reset_index(drop=True), name=name or self.name, parent=self.name)

    # --- identity -----------------------------------------------------------------------------
    def _identity(self) -> dict:
        return {
            "name": self.name, "dataset": self.dataset, "variant": self.variant,
            "revision": self.revision, "parent": self.parent, "seed": self.seed,
            "parameters": self.parameters, "vocabulary": self.vocabulary.to_json(),
        }

    @property
    def content_hash(self) -> str:
        """The sha256 (hex) of the rows and the defining metadata (name, dataset, variant, revision, parent, seed,
        parameters, vocabulary), not of ``root``; computed once.
        """
        cached = self.__dict__.get("_content_hash")
        if cached is None:
            h = hashlib.sha256()
            h.update(json.dumps(self._identity(), sort_keys=True, default=_json_default).encode())
            buf = io.StringIO()
            self.table.to_csv(buf, index=False, lineterminator="\n")
            h.update(buf.getvalue().encode())
            cached = h.hexdigest()
            object.__setattr__(self, "_content_hash", cached)
        return cached

    @property
    def image_hash(self) -> str:
        """Hash of just the images in order (ids + file hashes): the key of the decoded-tensor cache."""
        h = hashlib.sha256()
        for i, s, p in zip(self.table["id"], self.table["sha256"], self.table["path"]):
            h.update(f"{i}\0{s or ''}\0{'' if s else (p or '')}\n".encode())
        if self.table["sha256"].isna().any() and self.root:
            h.update(self.root.encode())  # no file hashes: the location is the identity
        return h.hexdigest()

    # --- storage ------------------------------------------------------------------------------
    def metadata(self) -> dict:
        """The dict stored in the Parquet schema: the defining fields, ``root``, ``content_hash``, format, n_images."""
        return {**self._identity(), "root": self.root, "content_hash": self.content_hash,
                "format": FORMAT_VERSION, "n_images": len(self)}

    def save(self, path: str | os.PathLike) -> Path:
        """Write Parquet atomically; same manifest ⇒ byte-identical file."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        table = pa.Table.from_pandas(self.table, preserve_index=False)
        meta = dict(table.schema.metadata or {})
        meta.pop(b"pandas", None)  # holds library versions; the schema is enough to read back
        meta[_META_KEY] = json.dumps(self.metadata(), sort_keys=True, default=_json_default).encode()
        table = table.replace_schema_metadata(meta)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        pq.write_table(table, tmp, compression="zstd")
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> Manifest:
        """Read a manifest written by ``save``; ``InputError`` when the file is not a readable shiftlab manifest."""
        path = Path(path)
        try:
            st = path.stat()
            key = (str(path.resolve()), st.st_mtime_ns, st.st_size, st.st_ino)
        except OSError:
            key = None
        kept = _READ.get(key) if key else None
        if kept is None:
            kept = cls._read(path)
            if key:
                while len(_READ) >= _READ_MAX:
                    _READ.pop(next(iter(_READ)))
                _READ[key] = kept
        # a copy: a caller may change its table or parameters without reaching the kept one
        out = copy.copy(kept)
        object.__setattr__(out, "table", kept.table.copy())
        object.__setattr__(out, "parameters", copy.deepcopy(kept.parameters))
        return out

    @classmethod
    def _read(cls, path: Path) -> Manifest:
        try:
            table = pq.read_table(path)
        except (OSError, pa.ArrowInvalid) as e:
            raise InputError(f"{path}: not a readable Parquet manifest ({e})") from None
        raw = (table.schema.metadata or {}).get(_META_KEY)
        if raw is None:
            raise InputError(f"{path}: a Parquet file but not a shiftlab manifest (no 'shiftlab' metadata)")
        try:  # hand-edited or foreign metadata must give a one-line error, not a traceback
            m = json.loads(raw)
            name, vocab = m["name"], Vocabulary.from_json(m["vocabulary"])
        except (ValueError, KeyError, TypeError) as e:
            raise InputError(f"{path}: broken shiftlab metadata ({type(e).__name__} {e}); "
                             "re-create the manifest") from None
        return cls(
            table=table.to_pandas(), name=name, vocabulary=vocab,
            root=m.get("root"), dataset=m.get("dataset"), variant=m.get("variant"),
            revision=m.get("revision"), parent=m.get("parent"), seed=m.get("seed"),
            parameters=m.get("parameters") or {},
        )

    # --- PyTorch ------------------------------------------------------------------------------
    def torch_dataset(self, recipe=None, *, normalize: bool = True):
        """A ``torch.utils.data.Dataset`` yielding ``(tensor (C, H, W) float32, label)``.

        Undecodable images yield a zero tensor and label -1 (use it as ``ignore_index``); their reasons
        are collected in ``dataset.bad`` (per process).
        """
        from shiftlab.data.torchdata import ManifestDataset  # torch only when asked for: manifests load without it

        return ManifestDataset(self, recipe, normalize=normalize)
