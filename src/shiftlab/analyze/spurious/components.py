"""The components of a class a person can judge (SPECS S3): top images, feature visualisations, the ranking.

For class k of a model, fitted on the training images labelled k: per component l, the m fit images with the
largest α_l (ties by index), and a visualisation, an image that maximises α_l: APGD-L2 from grey 0.5 (plus
seeded noise of norm ε), ε = 30 at 224 px scaled by side/224 for smaller inputs, 200 steps, maximising
⟨v_l, z_k(x)⟩ · Σ_i v_{l,i} (α_l up to a constant). The first B components by eigenvalue are visualised in one
batch and ranked by the class-k softmax probability of their visualisation; the top ones go to a person, who
labels each spurious / not spurious / inconsistent.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from shiftlab.analyze.spurious.pca import ClassPCA, PCAStore, fit_class, top_images
from shiftlab.errors import InputError
from shiftlab.models.attacks import apgd_l2_maximize

#: the published visualisation radius at 224 px
EPS_224 = 30.0


@dataclass
class Component:
    """One component of class ``cls``: its ``index`` l (by descending eigenvalue), ``eigenvalue``, the fit
    manifest ``rows`` of its top images with their ``alpha``, the ``visualisation`` (C, H, W) float32 in [0, 1],
    its α (``visualisation_alpha``) and class-k probability (``probability``), and its ``rank`` by that."""

    cls: int
    index: int
    eigenvalue: float
    rows: list[int]
    alpha: list[float]
    visualisation: np.ndarray
    visualisation_alpha: float
    probability: float
    rank: int = 0


@dataclass
class ClassComponents:
    """The ranked components of one class (best first) and how they were made (``settings``: ε, steps, seed…)."""

    cls: int
    n_fit: int
    components: list[Component]
    settings: dict = field(default_factory=dict)


def visualisation_eps(side: int) -> float:
    """ε for inputs of ``side`` px: 30 at 224 px, scaled by side / 224 (we: for the small images of the world)."""
    return EPS_224 * side / 224.0


def visualise(clf, pca: ClassPCA, components, *, steps: int = 200, seed: int = 0, eps: float | None = None,
              batch_size: int = 64) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Visualisations of ``components`` of class ``pca.cls`` for Classifier ``clf``, batched over components.

    Returns (images (L, C, H, W) float32 in [0, 1], their α_l (L,), their class-k softmax probability (L,)).
    Component j's start noise comes from ``seed`` + j, so a batch split gives the same images.
    """
    comps = [int(c) for c in components]
    if comps and (min(comps) < 0 or max(comps) >= pca.dim):
        raise InputError(f"class {pca.cls} has components 0..{pca.dim - 1}, not {comps}")
    c, h, w = clf.recipe.input_shape
    if not comps:
        return np.zeros((0, c, h, w), np.float32), np.zeros(0), np.zeros(0)
    eps = visualisation_eps(h) if eps is None else float(eps)
    dev = clf.device
    wk = torch.as_tensor(pca.weight, device=dev)
    out_x, out_a, out_p = [], [], []
    for s in range(0, len(comps), batch_size):
        chunk = comps[s:s + batch_size]
        v = torch.as_tensor(pca.components[:, chunk], device=dev)  # (D, B)
        scale = v.sum(dim=0)

        def objective(x, v=v, scale=scale):
            feats = clf.forward(x, features=True)[1]
            return ((feats * wk[None, :]) * v.T).sum(dim=1) * scale

        starts = []
        for j in range(len(chunk)):  # one generator per component: batching does not change the images
            g = torch.Generator(device="cpu").manual_seed(seed + s + j)
            starts.append(torch.randn((c, h, w), generator=g))
        noise = torch.stack(starts).to(dev)
        grey = torch.full((len(chunk), c, h, w), 0.5, device=dev)
        x, _ = apgd_l2_maximize(objective, grey, eps=eps, steps=steps, noise=noise)
        with torch.no_grad():
            logits, feats = clf.forward(x, features=True)
            alpha = pca.alpha(feats.cpu().numpy(), chunk)[np.arange(len(chunk)), np.arange(len(chunk))]
            prob = torch.softmax(logits.float(), dim=1)[:, pca.cls]
        out_x.append(x.cpu().numpy().astype(np.float32))
        out_a.append(alpha.astype(np.float64))
        out_p.append(prob.cpu().numpy().astype(np.float64))
    return np.concatenate(out_x), np.concatenate(out_a), np.concatenate(out_p)


def class_components(clf, features: np.ndarray, labels: np.ndarray, cls: int, *, store: PCAStore | None = None,
                     fit_manifest_hash: str = "", n_visualise: int = 20, top: int = 10, images: int = 5,
                     steps: int = 200, seed: int = 0, eps: float | None = None) -> ClassComponents:
    """Fit class ``cls`` on the rows of ``features`` (N, D) labelled ``cls``, visualise its first ``n_visualise``
    components in one batch, rank them by the class probability of their visualisation and keep ``top``, each
    with its ``images`` top fit images (rows of ``features``)."""
    rows = np.flatnonzero(np.asarray(labels) == cls)
    w, b = (t.detach().cpu().numpy() for t in clf.last_layer())

    def fit():
        return fit_class(features[rows], w[cls], float(b[cls]), cls)

    pca = store.get_or_fit(clf.key, fit_manifest_hash, cls, fit) if store is not None else fit()
    n_vis = min(n_visualise, pca.dim)
    alpha = pca.alpha(features[rows], slice(0, n_vis))
    best = top_images(alpha, images)
    vis, vis_alpha, prob = visualise(clf, pca, range(n_vis), steps=steps, seed=seed, eps=eps)
    order = sorted(range(n_vis), key=lambda j: (-prob[j], j))[:top]
    comps = []
    for rank, j in enumerate(order, 1):
        comps.append(Component(cls, j, float(pca.eigenvalues[j]), [int(rows[r]) for r in best[j]],
                               [float(alpha[r, j]) for r in best[j]], vis[j], float(vis_alpha[j]), float(prob[j]),
                               rank))
    side = clf.recipe.input_shape[1]
    settings = {"eps": visualisation_eps(side) if eps is None else eps, "steps": steps, "seed": seed,
                "n_visualise": n_vis, "images": images, "attack": "APGD-L2 from grey 0.5, 1 restart"}
    return ClassComponents(cls, len(rows), comps, settings)
