"""Building the constructed training sets of SPECS S4 as files: D_R / D_NR (representation inversion) and
D_det / D_rand (targeted L2 PGD, relabelled to the target).

Each set is written under one folder: ``images/<id>.png`` (uint8; a grey image for one channel), ``data.npz``
(``x`` float32 (N, C, H, W) in [0, 1] as computed, ``y`` the new labels, and the provenance arrays),
``manifest.parquet`` (one row per image; provenance columns ``source_id``, ``source_label`` and ``start_id`` /
``start_distance`` / ``final_distance`` or ``target`` / ``success``) and ``complete.json`` (written last).

Resumable like the prediction store: the work is cut into chunks of a fixed size, each stored atomically as
``chunks/<i>.npz`` under the folder; a killed run skips the chunks it finished, and because every chunk is a pure
function of (inputs, parameters), the output is identical to an uninterrupted run's. ``params.json`` records the
parameters; a folder built with other parameters is refused rather than mixed.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image

from shiftlab.analyze.robustfeatures.invert import invert, straight_through_last_relu
from shiftlab.data.manifest import Manifest
from shiftlab.errors import InputError
from shiftlab.fsutil import atomic_save_npz, atomic_write_bytes, atomic_write_json, file_lock, read_json
from shiftlab.models.attacks import pgd_l2
from shiftlab.models.classifier import TorchClassifier
from shiftlab.progress import bar

#: the four constructed sets, and what each keeps as its label
KINDS = {"robust": "y", "nonrobust": "y", "det": "t = (y+1) mod C", "rand": "t random, != y"}
CHUNK = 128


@dataclass(frozen=True)
class InversionSettings:
    """D_R / D_NR inversion (Ilyas et al.: step 0.1, 1000 steps on CIFAR; here fewer by default, see the caller)."""

    steps: int = 1000
    step_size: float = 0.1
    grad_eps: float = 1e-10
    decay: float = 1.0  #: the step at t is step_size · decay**t (the MNIST study: 0.996)
    tol: float | None = None  #: early stop on |Δloss| < tol (the MNIST study: 1e-3)
    straight_through: bool = True  #: the last ReLU passes gradients straight through (the library's fake_relu)


@dataclass(frozen=True)
class TargetedSettings:
    """D_det / D_rand: targeted L2 PGD (the paper: ε 0.5, step 0.1, 100 iterations, no random start)."""

    eps: float = 0.5
    step_size: float = 0.1
    steps: int = 100


def start_indices(n: int, seed: int) -> np.ndarray:
    """For each of n training images, another one (uniform among the others, never itself), seeded."""
    if n < 2:
        raise InputError("inversion needs at least 2 training images (the start is another one)")
    j = np.random.default_rng([seed, 1]).integers(0, n - 1, n)
    return j + (j >= np.arange(n))  # skip i itself: uniform over the n−1 others


def target_labels(y: np.ndarray, n_classes: int, kind: str, seed: int) -> np.ndarray:
    """D_det: (y + 1) mod C; D_rand: uniform among the classes ≠ y (our choice, recorded), seeded."""
    if kind == "det":
        return (y + 1) % n_classes
    return (y + np.random.default_rng([seed, 2]).integers(1, n_classes, len(y))) % n_classes


def _check_params(folder: Path, params: dict) -> None:
    """A folder holding a set (or part of one) built with other parameters is refused, never mixed or reused."""
    pfile = folder / "params.json"
    if pfile.exists() and read_json(pfile) != json.loads(json.dumps(params)):
        raise InputError(f"{folder} holds a set built with other parameters; delete it or choose another name")


def _chunked(folder: Path, n: int, params: dict, compute: Callable[[int, int], dict], *, chunk: int,
             progress: bool, label: str) -> dict[str, np.ndarray]:
    """Run ``compute(lo, hi)`` → dict of arrays per chunk, storing each atomically; return them concatenated."""
    cdir = folder / "chunks"
    cdir.mkdir(parents=True, exist_ok=True)
    _check_params(folder, params)
    atomic_write_json(folder / "params.json", params)
    starts = list(range(0, n, chunk))
    parts = []
    with bar(label, n, disable=not progress) as b:
        for i, lo in enumerate(starts):
            path = cdir / f"{i:05d}.npz"
            if not path.exists():
                atomic_save_npz(path, **compute(lo, min(lo + chunk, n)))
            with np.load(path) as z:
                parts.append({k: z[k] for k in z.files})
            b.advance(min(chunk, n - lo))
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def _png(img: np.ndarray) -> bytes:
    """uint8 (C, H, W) → PNG bytes (grey for C = 1)."""
    arr = img[0] if img.shape[0] == 1 else img.transpose(1, 2, 0)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def _write_set(folder: Path, name: str, source: Manifest, x: np.ndarray, labels: np.ndarray, columns: dict,
               params: dict) -> Manifest:
    """Images, ``data.npz``, the manifest and ``complete.json`` (last) of one constructed set."""
    ids = [f"{name}-{i:06d}" for i in range(len(x))]
    u8 = np.clip(np.round(x * 255), 0, 255).astype(np.uint8)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    paths, shas = [], []
    for i, img in zip(ids, u8):
        data = _png(img)
        rel = f"images/{i}.png"
        atomic_write_bytes(folder / rel, data)
        paths.append(rel)
        shas.append(hashlib.sha256(data).hexdigest())
    table = pd.DataFrame({"id": ids, "path": paths, "sha256": shas, "label": labels.astype(np.int64),
                          "source_id": source.ids.astype(str), "source_label": np.asarray(source.labels),
                          **columns})
    dataset, _, variant = name.rpartition("-")
    m = Manifest(table, name, vocabulary=source.vocabulary, root=str(folder), dataset=dataset or name,
                 variant=variant, parent=source.name, seed=params.get("seed"), parameters=params)
    atomic_save_npz(folder / "data.npz", x=x.astype(np.float32), y=labels.astype(np.int64),
                    **{k: np.asarray(v) for k, v in columns.items() if np.asarray(v).dtype != object})
    m.save(folder / "manifest.parquet")
    atomic_write_json(folder / "complete.json", {"name": name, "n": len(ids), "content_hash": m.content_hash})
    return m


def _finished(folder: Path, params: dict) -> Manifest:
    _check_params(folder, params)
    return Manifest.load(folder / "manifest.parquet").with_root(folder)


def build_set(kind: str, clf: TorchClassifier, source: Manifest, pixels: np.ndarray, folder: Path, name: str, *,
              seed: int = 0, inversion: InversionSettings = InversionSettings(),
              targeted: TargetedSettings = TargetedSettings(), chunk: int = CHUNK,
              progress: bool = True) -> Manifest:
    """One constructed set from ``source``'s images (``pixels``: uint8 (N, C, H, W) in manifest order).

    ``kind``: ``robust`` / ``nonrobust`` invert ``clf``'s penultimate features (``clf`` is the robust model for
    D_R, the standard one for D_NR; the label y is kept); ``det`` / ``rand``: targeted L2 PGD on ``clf`` (the
    standard model), relabelled to the target. Returns the manifest (also in ``folder``). A finished folder
    is read back, not rebuilt.
    """
    if kind not in KINDS:
        raise InputError(f"unknown constructed set {kind!r}; one of {', '.join(KINDS)}")
    folder = Path(folder)
    with file_lock(folder.parent / f".{folder.name}.lock"):
        done = (folder / "complete.json").exists()
        y = np.asarray(source.labels)
        if (y < 0).any():
            raise InputError(f"{source.name}: every source image needs a label to build {kind}")
        x_all = torch.from_numpy(np.array(pixels)).float().div_(255).to(clf.device)
        base = {"kind": kind, "model": clf.key, "data_source": source.name, "source": source.content_hash,
                "seed": seed, "chunk": chunk}
        if kind in ("robust", "nonrobust"):
            s = inversion
            params = {**base, "steps": s.steps, "step_size": s.step_size, "grad_eps": s.grad_eps, "decay": s.decay,
                      "tol": s.tol, "straight_through": s.straight_through,
                      "start": "another training image, uniform, seeded (never x itself)", "iterate": "last"}
            starts = start_indices(len(y), seed)
            if done:
                return _finished(folder, params)

            def compute(lo, hi):
                with straight_through_last_relu(clf.module) if s.straight_through else nullcontext():
                    with torch.no_grad():
                        target = clf.features(x_all[lo:hi])
                    r = invert(clf.features, target, x_all[starts[lo:hi]], steps=s.steps, step_size=s.step_size,
                               grad_eps=s.grad_eps, decay=s.decay, tol=s.tol)
                return {"x": r.z.cpu().numpy(), "start_distance": r.start_distance.cpu().numpy(),
                        "final_distance": r.final_distance.cpu().numpy(), "steps_taken": r.steps.cpu().numpy()}

            out = _chunked(folder, len(y), params, compute, chunk=chunk, progress=progress, label=f"building {name}")
            cols = {"start_id": source.ids.astype(str)[starts], "start_index": starts,
                    "start_distance": out["start_distance"], "final_distance": out["final_distance"],
                    "steps_taken": out["steps_taken"]}
            return _write_set(folder, name, source, out["x"], y, cols, params)
        s = targeted
        params = {**base, "eps": s.eps, "step_size": s.step_size, "steps": s.steps, "random_start": False,
                  "target": KINDS[kind], "iterate": "last"}
        t = target_labels(y, clf.num_classes, kind, seed)
        if done:
            return _finished(folder, params)

        def compute(lo, hi):
            tt = torch.from_numpy(t[lo:hi]).to(clf.device)
            xa = pgd_l2(clf.logits, x_all[lo:hi], tt, eps=s.eps, steps=s.steps, step_size=s.step_size,
                        targeted=True)
            with torch.no_grad():
                hit = clf.logits(xa).argmax(1) == tt
            return {"x": xa.cpu().numpy(), "success": hit.cpu().numpy(),
                    "delta_norm": (xa - x_all[lo:hi]).flatten(1).norm(dim=1).cpu().numpy()}

        out = _chunked(folder, len(y), params, compute, chunk=chunk, progress=progress, label=f"building {name}")
        cols = {"target": t, "success": out["success"], "delta_norm": out["delta_norm"]}
        return _write_set(folder, name, source, out["x"], t, cols, params)
