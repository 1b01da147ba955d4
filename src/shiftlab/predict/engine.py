"""Decode-once batched inference: every model of a run reads one decoded-tensor cache per recipe
geometry, and each (model, manifest, recipe) is computed once into the PredictionStore.

Cost ≈ decode + Σ forward, not N × (decode + forward): images are decoded into the cache (in the
background while the first model already computes), and a prefetch thread turns the next batch into a
tensor while the model runs on the current one.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import torch

from shiftlab.data.decode import DEFAULT_MAX_PIXELS
from shiftlab.data.recipes import Recipe
from shiftlab.errors import InputError
from shiftlab.models.adapters.predictions import PrecomputedPredictions
from shiftlab.models.classifier import Classifier
from shiftlab.models.specs import load_model
from shiftlab.predict.cache import DecodedCache
from shiftlab.predict.executors import current_executor
from shiftlab.predict.store import DEFAULT_CHUNK, PredictionStore
from shiftlab.progress import bar
from shiftlab.workspace import Workspace


@dataclass
class ModelPredictions:
    """One model's predictions on one manifest, rows in manifest order."""

    model: str
    kind: str  # "logits" | "probabilities" | "topk"
    values: np.ndarray  # (N, K) scores as float32, or (N, k) top-k indices
    valid: np.ndarray  # (N,) False for undecodable images (their rows are NaN)
    bad: dict[str, str]  # image id → reason
    features: np.ndarray | None = None

    @property
    def score_kind(self) -> str:
        """``scores`` (logits or probabilities) or ``topk``: the ``kind`` the metrics take."""
        return "topk" if self.kind == "topk" else "scores"


def resolve_device(device: str = "auto") -> torch.device:
    """The torch device for ``device``: ``auto`` (default) → ``cuda`` when available, else ``cpu``; ``InputError``
    for an unknown name or a CUDA device on a machine without CUDA.
    """
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        d = torch.device(device)
    except RuntimeError:
        raise InputError(f"unknown device {device!r}; use auto, cpu or cuda[:N]") from None
    if d.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device {device} requested but CUDA is not available here; use --device cpu")
    return d


def prefetch(it: Iterable, depth: int = 2) -> Iterator:
    """Run an iterator in a background thread, ``depth`` items ahead."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    done = object()

    def fill():
        try:
            for x in it:
                q.put(x)
        except BaseException as e:
            q.put(e)
        q.put(done)

    threading.Thread(target=fill, daemon=True, name="shiftlab-prefetch").start()
    while (x := q.get()) is not done:
        if isinstance(x, BaseException):
            raise x
        yield x


def _batches(rows, lo: int, hi: int, batch_size: int, device: torch.device):
    """(row offsets within [lo, hi), uint8 tensor) per batch of decodable rows; ``rows(a, b)`` gives
    (uint8 pixels, valid mask) of rows [a, b). With a DecodedCache's ``rows`` each batch waits only for its
    own rows to be decoded, so compute starts as soon as the first batch is ready."""
    pin = device.type == "cuda"
    for a in range(lo, hi, batch_size):
        b = min(hi, a + batch_size)
        pixels, valid = rows(a, b)
        idx = np.flatnonzero(valid)
        if len(idx) == 0:
            continue
        t = torch.from_numpy(np.ascontiguousarray(pixels[idx]))
        if pin:
            t = t.pin_memory()
        yield idx + (a - lo), t


def forward_rows(model: Classifier, rows, lo: int, hi: int, features: bool, *, batch_size: int,
                 device: torch.device) -> tuple[np.ndarray, np.ndarray | None]:
    """float32 logits (hi-lo, K) and, if ``features``, (hi-lo, D) features of rows [lo, hi), NaN for the
    undecodable ones; ``rows(a, b)`` gives (uint8 pixels, valid mask). Batches start at ``lo`` every
    ``batch_size`` rows, so every executor that runs a store chunk through here batches it, and rounds it,
    the same way."""
    logits = feats = None
    amp = (torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else nullcontext())
    with torch.inference_mode(), amp:
        for idx, t in prefetch(_batches(rows, lo, hi, batch_size, device)):
            x = t.to(device, non_blocking=True).float().div_(255.0)
            out, f = model.forward(x, features=features)
            out = out.float().cpu().numpy()
            if logits is None:
                logits = np.full((hi - lo, out.shape[1]), np.nan, np.float32)
            logits[idx] = out
            if features:
                f = f.float().cpu().numpy()
                if feats is None:
                    feats = np.full((hi - lo, f.shape[1]), np.nan, np.float32)
                feats[idx] = f
    if logits is None:  # every image of the rows is undecodable
        w, _ = model.last_layer()
        logits = np.full((hi - lo, w.shape[0]), np.nan, np.float32)
        if features:
            feats = np.full((hi - lo, w.shape[1]), np.nan, np.float32)
    return logits, feats


class Engine:
    """Holds one decoded cache per (manifest, geometry) for the duration of a run."""

    def __init__(self, workspace=None, *, device: str = "auto", batch_size: int = 64, workers: int | None = None,
                 max_pixels: int = DEFAULT_MAX_PIXELS, progress: bool = True, chunk_size: int = DEFAULT_CHUNK):
        self.workspace = workspace if isinstance(workspace, Workspace) else Workspace.resolve(workspace)
        self.device = resolve_device(device)
        self.device_option = device  # what a remote worker resolves for itself (``auto``: its own GPU, if any)
        if batch_size < 1:
            raise InputError("batch size must be at least 1")
        self.batch_size, self.workers, self.max_pixels = batch_size, workers, max_pixels
        self.progress, self.chunk_size = progress, chunk_size
        self.store = PredictionStore(self.workspace)
        self._caches: dict[tuple[str, str], DecodedCache] = {}

    def cache(self, manifest, recipe: Recipe) -> DecodedCache:
        """The DecodedCache of the manifest's images at the recipe's geometry, one per engine (not yet built)."""
        k = (manifest.image_hash, recipe.geometry_key())
        if k not in self._caches:
            self._caches[k] = DecodedCache(manifest, recipe, self.workspace, workers=self.workers,
                                           max_pixels=self.max_pixels, progress=self.progress)
        return self._caches[k]

    def predict(self, manifest, model: Classifier | PrecomputedPredictions, *,
                features: bool = False) -> ModelPredictions:
        """One model's predictions on ``manifest``: precomputed ones aligned, a Classifier's from the store.

        Chunks of the model's cell that are not stored yet are computed first (float32 logits; (N, D) features
        when ``features``). Raises ``InputError`` for features of precomputed predictions, or when predictions
        must be computed for a labels-only manifest.
        """
        if isinstance(model, PrecomputedPredictions):
            if features:
                raise InputError(f"{model.spec}: precomputed predictions carry no features")
            a = model.align(manifest)
            values = a.values if a.kind == "topk" else a.values.astype(np.float32)
            return ModelPredictions(model.name, a.kind, values, np.ones(len(manifest), bool), {})
        stored = self._stored(manifest, model, features)
        ids = manifest.ids
        return ModelPredictions(model.name, "logits", stored.logits.astype(np.float32), stored.valid,
                                {str(ids[i]): r for i, r in stored.bad.items()},
                                np.asarray(stored.features) if features else None)

    def cell(self, manifest, model: Classifier):
        """The PredictionCell of (model, manifest, model's recipe) in this engine's store."""
        return self.store.cell(model.key, manifest, model.recipe, self.chunk_size)

    @staticmethod
    def require_images(manifest) -> None:
        """``InputError`` when predictions must be computed for a labels-only manifest."""
        if not manifest.has_images:
            raise InputError(f"{manifest.name} lists labels only (no image root): give --root with the images, "
                             "or evaluate precomputed predictions:")

    def _stored(self, manifest, model: Classifier, features: bool):
        cell = self.cell(manifest, model)
        if cell.is_complete(features):
            return cell.load(features)
        self.require_images(manifest)
        with cell.writing():
            if cell.is_complete(features):  # another process finished it while we waited
                return cell.load(features)
            pending = cell.pending_chunks(features)
            if pending:
                cache = self.cache(manifest, model.recipe).start()
                model.to(self.device, channels_last=self.device.type == "cuda")
                total = sum(cell.chunk_range(i)[1] - cell.chunk_range(i)[0] for i in pending)
                with bar(f"{model.name} on {manifest.name}", total, disable=not self.progress) as b:
                    for i in pending:
                        lo, hi = cell.chunk_range(i)
                        logits, feats, bad = self._run_chunk(model, cache, lo, hi, features)
                        cell.write_chunk(i, logits, bad, feats)
                        b.advance(hi - lo)
            return cell.finalize()

    def _run_chunk(self, model: Classifier, cache: DecodedCache, lo: int, hi: int, features: bool):
        logits, feats = forward_rows(model, cache.rows, lo, hi, features, batch_size=self.batch_size,
                                     device=self.device)
        bad = {i: r for i, r in cache.bad.items() if lo <= i < hi}
        return logits, feats, bad

    def close(self) -> None:
        """Wait for every cache's background decoding to end; re-raises the error one ended with."""
        for c in self._caches.values():
            c.join()


def predict(manifest, models: Sequence[str | Classifier | PrecomputedPredictions], *, workspace=None,
            device: str = "auto", batch_size: int = 64, features: bool = False,
            recipe_overrides: dict | None = None, workers: int | None = None,
            max_pixels: int = DEFAULT_MAX_PIXELS, progress: bool = True,
            chunk_size: int = DEFAULT_CHUNK, executor=None) -> list[ModelPredictions]:
    """Predictions of each model on ``manifest``, computed once and stored; specs are loaded as the executor
    asks for them (the local one: one at a time). ``executor``: default the one in force
    (``shiftlab.predict.executors.current_executor``, local unless a ``use_executor`` block says otherwise)."""
    engine = Engine(workspace, device=device, batch_size=batch_size, workers=workers, max_pixels=max_pixels,
                    progress=progress, chunk_size=chunk_size)

    def loaded():
        for m in models:
            yield load_model(m, workspace=engine.workspace, recipe_overrides=recipe_overrides) \
                if isinstance(m, str) else m

    try:
        return (executor or current_executor()).predict(engine, manifest, loaded(), features=features)
    finally:
        engine.close()
