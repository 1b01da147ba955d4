"""Class-wise neural PCA (SPECS S3): a class's logit split into components a person can judge.

For class k with last-layer row w_k and bias b_k, z_k(x) = w_k ⊙ φ(x) (φ: the features, the last linear
layer's input), so logit_k = 1ᵀz_k + b_k. Over every fit image *labelled* k, centre z_k on its class mean m
(float32), take the covariance (normalised by N_k − 1) and its eigendecomposition in float64, all D directions
by descending eigenvalue (N_k < D allowed: the extra directions have eigenvalue 0). Then

    α_l(x) = ⟨v_l, z_k(x) − m⟩ · (Σ_i v_{l,i})

and Σ_l α_l(x) + 1ᵀm + b_k = logit_k(x) for every x (the basis is complete), α_l is unchanged when v_l flips
sign, and α_l averages to 0 over the fit set. A fitted class is stored under the workspace by (model key,
class, fit-manifest hash) and reused; only one class's D × D basis is in memory at a time.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from shiftlab.errors import InputError
from shiftlab.fsutil import atomic_save_npz


@dataclass(frozen=True)
class ClassPCA:
    """The neural PCA of one class: ``mean`` m (D,) float32, ``components`` (D, D) with v_l as column l
    (float32, by descending eigenvalue), ``eigenvalues`` (D,) float64, the class's last-layer ``weight`` w_k (D,)
    and ``bias`` b_k, and ``n_fit`` images."""

    cls: int
    mean: np.ndarray
    components: np.ndarray
    eigenvalues: np.ndarray
    weight: np.ndarray
    bias: float
    n_fit: int

    @property
    def dim(self) -> int:
        """D, the feature size."""
        return len(self.mean)

    def z(self, features: np.ndarray) -> np.ndarray:
        """(N, D) features φ → (N, D) float32 z_k = w_k ⊙ φ."""
        return np.asarray(features, np.float32) * self.weight[None, :]

    def alpha(self, features: np.ndarray, components: slice | np.ndarray | None = None) -> np.ndarray:
        """(N, D) features → (N, L) α_l for the components asked (default all D), float32."""
        v = self.components if components is None else self.components[:, components]
        centred = self.z(features) - self.mean[None, :]
        return (centred @ v) * v.sum(axis=0)[None, :]

    def logit(self, features: np.ndarray) -> np.ndarray:
        """(N,) logit_k = 1ᵀz_k + b_k, in float64 (the reference the decomposition is checked against)."""
        return np.asarray(features, np.float64) @ self.weight.astype(np.float64) + self.bias

    def save(self, path) -> None:
        """Write the basis to ``path`` (``.npz``), atomically."""
        atomic_save_npz(path, cls=np.int64(self.cls), mean=self.mean, components=self.components,
                        eigenvalues=self.eigenvalues, weight=self.weight, bias=np.float64(self.bias),
                        n_fit=np.int64(self.n_fit))

    @classmethod
    def from_file(cls, path: Path) -> ClassPCA:
        """The basis ``save`` wrote."""
        with np.load(path) as f:
            return cls(int(f["cls"]), f["mean"], f["components"], f["eigenvalues"], f["weight"], float(f["bias"]),
                       int(f["n_fit"]))


def fit_class(features: np.ndarray, weight: np.ndarray, bias: float, cls: int) -> ClassPCA:
    """The neural PCA of class ``cls`` from the (N_k, D) features of its fit images (N_k ≥ 2) and its last-layer
    row ``weight`` (D,) and ``bias``. ``InputError`` for fewer than 2 images or a shape mismatch."""
    f = np.asarray(features, np.float32)
    w = np.asarray(weight, np.float32)
    if f.ndim != 2 or f.shape[1] != w.shape[0]:
        raise InputError(f"class {cls}: features {f.shape} do not match the last layer's {w.shape[0]} inputs")
    if len(f) < 2:
        raise InputError(f"class {cls}: {len(f)} fit image(s); the neural PCA needs at least 2 images labelled {cls}")
    z = f * w[None, :]
    mean = z.mean(axis=0, dtype=np.float64).astype(np.float32)
    centred = (z - mean[None, :]).astype(np.float64)
    cov = centred.T @ centred / (len(z) - 1)
    vals, vecs = np.linalg.eigh(cov)  # ascending, symmetric: real, orthonormal columns
    order = np.argsort(-vals, kind="stable")
    return ClassPCA(int(cls), mean, vecs[:, order].astype(np.float32), vals[order], w, float(bias), len(z))


def fit_key(model_key: str, fit_manifest_hash: str, cls: int) -> str:
    """The stored basis's name: model key × fit manifest × class, hashed (model keys hold '/' and ':')."""
    h = hashlib.sha256(f"{model_key}\0{fit_manifest_hash}".encode()).hexdigest()[:20]
    return f"{h}/class-{cls:05d}.npz"


class PCAStore:
    """Fitted class bases under ``<workspace>/spurious/pca``, one ``.npz`` per (model, fit manifest, class)."""

    def __init__(self, workspace):
        self.root = Path(workspace.root) / "spurious" / "pca"

    def get_or_fit(self, model_key: str, fit_manifest_hash: str, cls: int, fit) -> ClassPCA:
        """The stored basis, or ``fit()`` (→ ClassPCA) computed now and stored atomically."""
        path = self.root / fit_key(model_key, fit_manifest_hash, cls)
        if path.exists():
            return ClassPCA.from_file(path)
        pca = fit()
        path.parent.mkdir(parents=True, exist_ok=True)
        pca.save(path)
        return pca


def fit_classes(features: np.ndarray, labels: np.ndarray, weight: np.ndarray, bias: np.ndarray, classes,
                *, store: PCAStore | None = None, model_key: str = "", fit_manifest_hash: str = ""):
    """Yield the ClassPCA of each class in ``classes`` (one at a time: one D × D basis in memory), fitted on the
    rows of ``features`` labelled with it, through ``store`` when given."""
    labels = np.asarray(labels)
    for k in classes:
        rows = np.flatnonzero(labels == k)

        def fit(k=k, rows=rows):
            return fit_class(features[rows], weight[k], float(bias[k]), int(k))

        yield store.get_or_fit(model_key, fit_manifest_hash, int(k), fit) if store is not None else fit()


def top_images(alpha: np.ndarray, m: int) -> np.ndarray:
    """(N, L) α → (L, m) row indices of the m largest α per component, ties broken by the lower index."""
    n = alpha.shape[0]
    m = min(m, n)
    # lexsort's last key is primary: −α descending, then the index ascending
    idx = np.arange(n)
    return np.stack([np.lexsort((idx, -alpha[:, c]))[:m] for c in range(alpha.shape[1])])
