"""Class-wise neural PCA (SPECS S3): the decomposition identity, sign invariance, centring, the stored basis."""

from __future__ import annotations

import numpy as np
import pytest

from shiftlab.analyze.spurious.pca import ClassPCA, PCAStore, fit_class, fit_classes, top_images
from shiftlab.errors import InputError


def relu_features(rng, n, d, shift=0.0):
    """Non-negative, correlated features like a ReLU network's penultimate layer."""
    mix = rng.normal(0, 1, (d, d)) / np.sqrt(d)
    return np.maximum(rng.normal(shift, 1, (n, d)) @ mix + 0.3, 0).astype(np.float32)


def identity_error(pca: ClassPCA, feats: np.ndarray) -> np.ndarray:
    """|Σ_l α_l + 1ᵀm + b_k − logit_k| / max(1, Σ_i |z_i|), per image (the S3 tolerance)."""
    total = pca.alpha(feats).astype(np.float64).sum(axis=1) + pca.mean.astype(np.float64).sum() + pca.bias
    scale = np.maximum(1.0, np.abs(pca.z(feats)).sum(axis=1))
    return np.abs(total - pca.logit(feats)) / scale


@pytest.mark.parametrize("n, d", [(300, 64), (40, 128), (2, 16)])  # N > D, N < D, the smallest fit
def test_decomposition_identity_on_fit_and_unseen_images(n, d):
    rng = np.random.default_rng(n + d)
    fit = relu_features(rng, n, d)
    w, b = rng.normal(0, 0.5, d).astype(np.float32), 1.7
    pca = fit_class(fit, w, b, cls=3)
    assert pca.components.shape == (d, d) and pca.n_fit == n
    assert np.all(np.diff(pca.eigenvalues) <= 1e-12)  # descending
    if n < d:  # the directions beyond the data have (numerically) zero variance
        assert np.all(np.abs(pca.eigenvalues[n:]) < 1e-6 * pca.eigenvalues[0])
    unseen = relu_features(rng, 50, d, shift=0.5)
    assert identity_error(pca, fit).max() <= 1e-4
    assert identity_error(pca, unseen).max() <= 1e-4
    # α averages to zero over the fit set (relative to α's own size)
    a = pca.alpha(fit).astype(np.float64)
    assert np.abs(a.mean(axis=0)).max() <= 1e-4 * max(1.0, np.abs(a).max())


def test_sign_flip_leaves_alpha_unchanged():
    rng = np.random.default_rng(1)
    fit = relu_features(rng, 200, 32)
    pca = fit_class(fit, rng.normal(0, 1, 32), 0.0, cls=0)
    flips = np.where(rng.random(32) < 0.5, -1.0, 1.0).astype(np.float32)
    flipped = ClassPCA(pca.cls, pca.mean, pca.components * flips[None, :], pca.eigenvalues, pca.weight, pca.bias,
                       pca.n_fit)
    x = relu_features(rng, 20, 32, shift=0.3)
    np.testing.assert_allclose(flipped.alpha(x), pca.alpha(x), rtol=1e-6, atol=1e-6)


def test_hand_worked_two_dimensional_case():
    # z = w ⊙ φ with w = (1, 2): fit z = (0,0), (2,0) → m = (1, 0); covariance diag(2, 0) → v_1 = ±e_1, v_2 = ±e_2
    pca = fit_class(np.array([[0.0, 0.0], [2.0, 0.0]]), np.array([1.0, 2.0]), 0.5, cls=0)
    np.testing.assert_allclose(pca.eigenvalues, [2.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(np.abs(pca.components), np.eye(2), atol=1e-7)
    # x with φ = (3, 1): z = (3, 2), z − m = (2, 2); α_1 = ⟨±e_1, (2,2)⟩·(±1) = 2, α_2 = 2; logit = 3 + 2 + 0.5
    np.testing.assert_allclose(pca.alpha(np.array([[3.0, 1.0]])), [[2.0, 2.0]], atol=1e-6)
    assert pca.logit(np.array([[3.0, 1.0]]))[0] == pytest.approx(5.5)


def test_fit_errors_are_one_line():
    with pytest.raises(InputError, match="at least 2 images labelled 4"):
        fit_class(np.ones((1, 3)), np.ones(3), 0.0, cls=4)
    with pytest.raises(InputError, match="do not match"):
        fit_class(np.ones((5, 3)), np.ones(4), 0.0, cls=4)


def test_store_reuses_the_basis(tmp_path):
    class WS:
        root = tmp_path

    rng = np.random.default_rng(2)
    feats = relu_features(rng, 90, 24)
    labels = np.repeat([0, 1, 2], 30)
    w, b = rng.normal(0, 1, (3, 24)).astype(np.float32), rng.normal(0, 1, 3)
    store = PCAStore(WS())
    first = list(fit_classes(feats, labels, w, b, [0, 2], store=store, model_key="m@1", fit_manifest_hash="abc"))
    assert [p.cls for p in first] == [0, 2] and all(p.n_fit == 30 for p in first)
    files = sorted(store.root.rglob("*.npz"))
    assert len(files) == 2
    # a second call reads the files (same arrays) and does not fit again
    again = list(fit_classes(np.zeros_like(feats), labels, w, b, [0, 2], store=store, model_key="m@1",
                             fit_manifest_hash="abc"))
    for p, q in zip(first, again):
        np.testing.assert_array_equal(p.components, q.components)
        np.testing.assert_array_equal(p.mean, q.mean)
    # another fit manifest is another basis
    other = next(fit_classes(feats[::-1].copy(), labels, w, b, [0], store=store, model_key="m@1",
                             fit_manifest_hash="def"))
    assert len(sorted(store.root.rglob("*.npz"))) == 3 and other.n_fit == 30


def test_top_images_ties_by_index():
    alpha = np.array([[1.0, 0.0], [3.0, 0.0], [3.0, 5.0], [2.0, 5.0]])
    np.testing.assert_array_equal(top_images(alpha, 3), [[1, 2, 3], [2, 3, 0]])
