"""SpuFix (SPECS S3): lower a class's logit by what its labelled spurious components contribute, no retraining.

For a target model and class k, with the target's z_i = w_k ⊙ φ(x_i) and class mean m on k's fit images
(aligned row for row with the source model's α on the same images):

    d_l = Σ_i α_{i,l} (z_i − m), L2-normalised          (one direction per labelled component l)
    λ(x) = solve(DᵀD, Dᵀ(z(x) − m))                     (least squares; one direction: a dot product)
    β_l(x) = max(λ_l(x) · 1ᵀd_l, 0),   logit_k(x) −= Σ_l β_l(x)

On the source model itself d_l = ±v_l and the correction is Σ_l max(α_l(x), 0). We: the other classes'
logits are the model's own forward pass, bit for bit (the original recomputed φWᵀ + b for them).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import torch

from shiftlab.errors import InputError
from shiftlab.models.classifier import Classifier


@dataclass(frozen=True)
class ClassFix:
    """What SpuFix needs for one class of the target model: ``cls``, the target's class mean ``mean`` m (D,),
    the normalised ``directions`` D (D, L), their column sums ``column_sums`` 1ᵀd_l (L,), and the ``components``
    (source component indices) they stand for."""

    cls: int
    mean: np.ndarray
    directions: np.ndarray
    column_sums: np.ndarray
    components: tuple[int, ...]


def class_fix(source_alpha: np.ndarray, target_features: np.ndarray, target_weight: np.ndarray, cls: int,
              components) -> ClassFix:
    """The ClassFix of class ``cls`` from the source's (N_k, L) α of the labelled ``components`` on k's fit images
    and the target's (N_k, D) features on the same images (same row order) and last-layer row (D,).

    ``InputError`` (one line) for misaligned rows or directions whose Gram matrix DᵀD is singular.
    """
    a = np.asarray(source_alpha, np.float64)
    f = np.asarray(target_features, np.float64)
    if a.ndim != 2 or a.shape[1] == 0:
        raise InputError(f"SpuFix class {cls}: no components to fix")
    if f.ndim != 2 or len(a) != len(f):
        raise InputError(f"SpuFix class {cls}: the source's α ({a.shape}) and the target's features ({f.shape}) "
                         "must come from the same fit images, row for row")
    z = f * np.asarray(target_weight, np.float64)[None, :]
    mean = z.mean(axis=0)
    d = (z - mean).T @ a  # (D, L): Σ_i α_{i,l} (z_i − m)
    norms = np.linalg.norm(d, axis=0)
    gram = (d / np.where(norms > 0, norms, 1.0)).T @ (d / np.where(norms > 0, norms, 1.0))
    if np.any(norms == 0) or np.linalg.cond(gram) > 1e12:
        raise InputError(f"SpuFix class {cls}: the directions of components {list(components)} are degenerate "
                         "(DᵀD is singular); drop the repeated or empty components")
    d = d / norms
    return ClassFix(int(cls), mean, d, d.sum(axis=0), tuple(int(c) for c in components))


def correction(fix: ClassFix, z: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
    """(N,) Σ_l β_l(x) for the target's (N, D) z = w_k ⊙ φ(x), in float64 (numpy), or for a tensor in its dtype
    and on its device (computed in float64)."""
    if isinstance(z, torch.Tensor):
        dt, dev, out_dtype = torch.float64, z.device, z.dtype
        z = z.to(dt)
        m = torch.as_tensor(fix.mean, dtype=dt, device=dev)
        dmat = torch.as_tensor(fix.directions, dtype=dt, device=dev)
        lam = torch.linalg.solve(dmat.T @ dmat, dmat.T @ (z - m).T).T  # (N, L)
        beta = torch.clamp(lam * torch.as_tensor(fix.column_sums, dtype=dt, device=dev), min=0)
        return beta.sum(dim=1).to(out_dtype)
    z = np.asarray(z, np.float64)
    lam = np.linalg.solve(fix.directions.T @ fix.directions, fix.directions.T @ (z - fix.mean).T).T
    return np.maximum(lam * fix.column_sums, 0).sum(axis=1)


class SpuFixClassifier(Classifier):
    """A Classifier with SpuFix applied to some classes' logits; everything else is the base model's.

    ``features`` and ``last_layer`` are the base model's, so for the fixed classes logits = features @ W.T + b
    minus the correction (the one place where that identity is meant not to hold).
    """

    def __init__(self, base: Classifier, fixes: list[ClassFix], source: str):
        h = hashlib.sha256(source.encode())
        for fx in fixes:
            h.update(np.int64(fx.cls).tobytes())
            h.update(np.asarray(fx.directions, np.float64).tobytes())
            h.update(np.asarray(fx.mean, np.float64).tobytes())
        super().__init__(f"spufix({base.name})", base.recipe, f"spufix:{base.key}@{h.hexdigest()[:16]}")
        self.base, self.fixes, self.source = base, list(fixes), source
        w, _ = base.last_layer()
        self._weights = {fx.cls: w[fx.cls].detach() for fx in fixes}
        self.vocabulary = base.vocabulary

    def to(self, device, channels_last: bool = False):
        """Move the base model; returns ``self``."""
        super().to(device)
        self.base.to(device, channels_last)
        self._weights = {k: v.to(self.device) for k, v in self._weights.items()}
        return self

    def forward(self, x, features: bool = False):
        """The base model's (logits, features) with each fixed class's logit lowered by its correction."""
        logits, feats = self.base.forward(x, features=True)
        logits = logits.clone()
        for fx in self.fixes:
            z = feats * self._weights[fx.cls].to(feats.dtype)[None, :]
            logits[:, fx.cls] = logits[:, fx.cls] - correction(fx, z).to(logits.dtype)
        return logits, (feats if features else None)

    def last_layer(self):
        """The base model's last layer."""
        return self.base.last_layer()


def read_components(path) -> dict[int, list[int]]:
    """A ``spurious_components.json`` (``{class: [component indices]}``, the published shape) → {class: indices}.

    ``InputError`` for a file that is not that shape (non-integer keys or indices, negative or repeated indices).
    """
    from shiftlab.fsutil import read_json

    doc = read_json(path)
    if not isinstance(doc, dict):
        raise InputError(f"{path}: expected {{class index: [component indices]}}, got a {type(doc).__name__}")
    out: dict[int, list[int]] = {}
    for k, v in doc.items():
        ok = isinstance(k, str) and k.isdigit() and isinstance(v, list) \
            and all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in v) and len(set(v)) == len(v)
        if not ok:
            raise InputError(f"{path}: class {k!r} must map to a list of distinct non-negative component indices")
        cls, comps = int(k), list(v)
        out[cls] = comps
    return out


OPTIONS = {"source": "", "components": "", "fit": ""}


def build_spufix(target: Classifier, source: Classifier, components: dict[int, list[int]], fit_manifest, *,
                 workspace=None, progress: bool = False) -> SpuFixClassifier:
    """SpuFix for ``target`` from ``source``'s neural PCA on ``fit_manifest`` (the training images; class k is
    fitted on the rows labelled k) and the labelled ``components``. Features of both models come through the
    prediction store (computed once, reused); the source's bases through the PCA store."""
    from shiftlab.analyze.spurious.pca import PCAStore, fit_class
    from shiftlab.predict.engine import predict
    from shiftlab.workspace import Workspace

    ws = workspace if isinstance(workspace, Workspace) else Workspace.resolve(workspace)
    preds = predict(fit_manifest, [source] if source is target else [source, target], workspace=ws,
                    features=True, progress=progress)
    src_p, tgt_p = preds[0], preds[-1]
    labels = np.asarray(fit_manifest.labels)
    ws_, bs = (t.detach().cpu().numpy() for t in source.last_layer())
    wt, _ = (t.detach().cpu().numpy() for t in target.last_layer())
    store = PCAStore(ws)
    fixes = []
    for k in sorted(components):
        if k >= len(wt):
            raise InputError(f"SpuFix: class {k} is beyond the model's {len(wt)} outputs")
        rows = np.flatnonzero((labels == k) & src_p.valid & tgt_p.valid)
        pca = store.get_or_fit(source.key, fit_manifest.content_hash, k,
                               lambda rows=rows, k=k: fit_class(src_p.features[rows], ws_[k], float(bs[k]), k))
        comps = components[k]
        if not comps:  # a class listed with no spurious component needs no fix
            continue
        if max(comps) >= pca.dim:
            raise InputError(f"SpuFix: class {k} has {pca.dim} components, not {max(comps) + 1}")
        alpha = pca.alpha(src_p.features[rows], comps)
        fixes.append(class_fix(alpha, tgt_p.features[rows], wt[k], k, comps))
    return SpuFixClassifier(target, fixes, source=f"{source.key}|{fit_manifest.content_hash}")


def load(rest: str, *, spec: str, workspace=None) -> SpuFixClassifier:
    """``spufix:TARGET?source=SPEC&components=FILE&fit=DATASET`` (the options after the last ``?``; ``source``
    defaults to the target itself)."""
    from shiftlab.data.layouts import read_dataset
    from shiftlab.models.adapters.zoo import split_options
    from shiftlab.models.specs import load_model

    target_spec, sep, query = rest.rpartition("?")
    if not sep:
        raise InputError(f"{spec}: expected spufix:TARGET?components=FILE&fit=DATASET[&source=SPEC]")
    _, opts = split_options(f"x?{query}", spec=spec, allowed=OPTIONS)
    for k in ("components", "fit"):
        if not opts[k]:
            raise InputError(f"{spec}: the option {k}= is required (components: a spurious_components.json; "
                             "fit: the training set the components were found on)")
    target = load_model(target_spec, workspace=workspace)
    source = load_model(opts["source"], workspace=workspace) if opts["source"] else target
    return build_spufix(target, source, read_components(opts["components"]),
                        read_dataset(opts["fit"], workspace=workspace), workspace=workspace)


def register() -> None:
    """The ``shiftlab.plugins`` entry point: adds the ``spufix:`` model scheme (idempotent)."""
    from shiftlab.models.specs import Scheme, register_scheme

    register_scheme(Scheme("spufix", "spufix:world:cnn-wide?components=comps.json&fit=world-train",
                           "shiftlab.analyze.spurious.spufix:load",
                           doc="SpuFix on a model: its labelled spurious components' share taken off their logits"))
