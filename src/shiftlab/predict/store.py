"""The PredictionStore: logits (float16) and, on request, penultimate features (float32) per
(model, manifest images, recipe), computed once.

One cell is a folder ``<workspace>/predictions/<model>/<images>-<recipe>/``:
- ``chunks/<i>.npz`` — rows [i·C, (i+1)·C) (C = ``chunk_size`` in ``cell.json``), each written to a
  temporary name and renamed, so a chunk file is either whole or absent;
- ``logits.npy`` (+ ``features.npy``), ``complete.json`` — the consolidated result; ``complete.json`` is
  renamed into place last and is what makes a cell readable.
A killed evaluation resumes from the finished chunks. Writers hold a file lock on the cell, so two
processes evaluating the same cell take turns and the second finds it complete.
Undecodable images have NaN logits and are listed in ``complete.json``.
"""

from __future__ import annotations

import json
import re
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from shiftlab.errors import IncompleteError
from shiftlab.fsutil import atomic_save_npy, atomic_save_npz, atomic_write_json, file_lock

DEFAULT_CHUNK = 512


def _slug(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9._@-]+", "_", s)[:120]


@dataclass
class StoredPredictions:
    """A cell's content: ``logits`` (N, K) float16 (NaN rows for undecodable images), ``features`` (N, D) float32
    or None, and ``bad``: row → reason for the undecodable rows.
    """

    logits: np.ndarray  # (N, K) float16, NaN rows for bad images
    features: np.ndarray | None  # (N, D) float32
    bad: dict[int, str]  # row → reason

    @property
    def valid(self) -> np.ndarray:
        """Bool (N,): False for the undecodable rows."""
        v = np.ones(len(self.logits), bool)
        v[list(self.bad)] = False
        return v


class PredictionCell:
    """The stored predictions of one (model key, manifest ``image_hash``, recipe key), in chunks of ``chunk_size``
    rows (default 512; an existing cell keeps its own). See the module docstring for the files.
    """

    def __init__(self, root: Path, model_key: str, manifest, recipe, chunk_size: int = DEFAULT_CHUNK):
        self.dir = Path(root) / _slug(model_key) / f"{manifest.image_hash[:20]}-{recipe.key()}"
        self.n = len(manifest)
        self.meta = {"model": model_key, "manifest": manifest.name, "n": self.n, "recipe": recipe.to_json(),
                     "chunk_size": chunk_size}
        cfg = self.dir / "cell.json"
        if cfg.is_file():  # the chunking of an existing cell wins, so that resumed chunks line up
            chunk_size = json.loads(cfg.read_text())["chunk_size"]
        self.chunk_size = chunk_size
        self.n_chunks = (self.n + chunk_size - 1) // chunk_size

    def chunk_range(self, i: int) -> tuple[int, int]:
        """Rows ``[lo, hi)`` of chunk ``i`` (the last chunk may be short)."""
        return i * self.chunk_size, min(self.n, (i + 1) * self.chunk_size)

    @contextmanager
    def writing(self):
        """Exclusive access for computing this cell."""
        self.dir.joinpath("chunks").mkdir(parents=True, exist_ok=True)
        with file_lock(self.dir / "lock"):
            for stale in self.dir.joinpath("chunks").glob(".*.tmp"):  # left by a killed writer
                stale.unlink(missing_ok=True)
            if not (self.dir / "cell.json").is_file():
                atomic_write_json(self.dir / "cell.json", {**self.meta, "chunk_size": self.chunk_size})
            yield self

    def is_complete(self, features: bool = False) -> bool:
        """Whether the cell is readable (``complete.json`` exists) and, if ``features``, holds features."""
        f = self.dir / "complete.json"
        if not f.is_file():
            return False
        return not features or json.loads(f.read_text()).get("features", False)

    def _chunk_file(self, i: int) -> Path:
        return self.dir / "chunks" / f"{i:06d}.npz"

    def pending_chunks(self, features: bool = False) -> list[int]:
        """The chunks not yet written (or, if ``features``, written without features), in order."""
        out = []
        for i in range(self.n_chunks):
            f = self._chunk_file(i)
            if not f.is_file():
                out.append(i)
            elif features:
                with np.load(f) as z:
                    if "features" not in z.files:
                        out.append(i)
        return out

    def write_chunk(self, i: int, logits: np.ndarray, bad: dict[int, str], features: np.ndarray | None = None):
        """Store rows of chunk i; ``bad`` maps row (in the manifest) → reason for undecodable rows."""
        lo, hi = self.chunk_range(i)
        assert logits.shape[0] == hi - lo
        rows = sorted(bad)
        arrays = {"logits": logits.astype(np.float16), "bad": np.asarray(rows, np.int64),
                  "reasons": np.asarray([bad[r] for r in rows], dtype=np.str_)}
        if features is not None:
            arrays["features"] = features.astype(np.float32)
        atomic_save_npz(self._chunk_file(i), **arrays)

    def finalize(self) -> StoredPredictions:
        """Consolidate the chunks into the readable result."""
        logits, feats, bad_reasons = [], [], {}
        for i in range(self.n_chunks):
            with np.load(self._chunk_file(i)) as z:
                logits.append(z["logits"])
                feats.append(z["features"] if "features" in z.files else None)
                bad_reasons.update((int(b), str(r)) for b, r in zip(z["bad"], z["reasons"]))
        logits = np.concatenate(logits)
        has_f = all(f is not None for f in feats)
        features = np.concatenate(feats) if has_f else None
        atomic_save_npy(self.dir / "logits.npy", logits)
        if has_f:
            atomic_save_npy(self.dir / "features.npy", features)
        atomic_write_json(self.dir / "complete.json", {
            **self.meta, "chunk_size": self.chunk_size, "features": has_f,
            "num_classes": int(logits.shape[1]), "bad": {str(k): v for k, v in bad_reasons.items()}})
        return StoredPredictions(logits, features, bad_reasons)

    def load(self, features: bool = False) -> StoredPredictions:
        """The consolidated predictions (features as a read-only memory map, if asked); ``IncompleteError`` when the
        cell is not complete or was stored without the features asked for.
        """
        f = self.dir / "complete.json"
        if not f.is_file():
            raise IncompleteError(f"predictions in {self.dir} are not complete; run the evaluation again to resume")
        doc = json.loads(f.read_text())
        if features and not doc.get("features"):
            raise IncompleteError(f"predictions in {self.dir} were stored without features")
        feats = np.load(self.dir / "features.npy", mmap_mode="r") if features else None
        return StoredPredictions(np.load(self.dir / "logits.npy"), feats,
                                 {int(k): v for k, v in doc["bad"].items()})


class PredictionStore:
    """All cells of a workspace."""

    def __init__(self, workspace):
        self.root = Path(workspace.predictions)

    def cell(self, model_key: str, manifest, recipe, chunk_size: int = DEFAULT_CHUNK) -> PredictionCell:
        """The cell of (model key, manifest images, recipe) under ``<workspace>/predictions/``."""
        return PredictionCell(self.root, model_key, manifest, recipe, chunk_size)
