"""Class-wise neural PCA at ImageNet size: seconds per class, α batched vs a per-image loop, peak memory.

One class of ImageNet as the published run fits it: N = 1,300 training images × D = 2,048 features (a
ResNet-50's penultimate layer), here synthetic (seeded, non-negative and correlated like ReLU features).
Prints the fit time (covariance + float64 eigendecomposition of all 2,048 directions), the time for α of
all components on the fit images batched (one GEMM) against a plain loop over images in the same run, and
the peak memory of one class (tracemalloc), which is what "one class at a time" must keep small.

Usage: ``python bench/spurious_pca.py [--n 1300] [--d 2048] [--loop-images 100]``. Last line: JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
import tracemalloc

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1300)
    ap.add_argument("--d", type=int, default=2048)
    ap.add_argument("--loop-images", type=int, default=100, help="images the per-image loop runs (scaled to N)")
    args = ap.parse_args()

    from shiftlab.analyze.spurious.pca import fit_class

    rng = np.random.default_rng(0)
    n, d = args.n, args.d
    mix = rng.normal(0, 1, (d, d)).astype(np.float32) / np.sqrt(d)
    feats = np.maximum(rng.normal(0, 1, (n, d)).astype(np.float32) @ mix + 0.3, 0)
    w = rng.normal(0, 0.05, d).astype(np.float32)
    del mix

    tracemalloc.start()
    t = time.perf_counter()
    pca = fit_class(feats, w, 0.1, cls=0)
    t_fit = time.perf_counter() - t
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    t = time.perf_counter()
    alpha = pca.alpha(feats)
    t_batched = time.perf_counter() - t

    # the plain way: one image at a time, each α_l as a dot product with v_l
    v, vsum = pca.components, pca.components.sum(axis=0)
    k = min(args.loop_images, n)
    t = time.perf_counter()
    for i in range(k):
        c = pca.z(feats[i:i + 1])[0] - pca.mean
        np.array([float(c @ v[:, j]) * vsum[j] for j in range(d)], np.float32)
    t_loop = (time.perf_counter() - t) * n / k

    err = np.abs(alpha.astype(np.float64).sum(1) + pca.mean.sum() + pca.bias - pca.logit(feats))
    err /= np.maximum(1.0, np.abs(pca.z(feats)).sum(1))
    figures = {"machine": f"{platform.machine()}, {os.cpu_count()} cores, numpy {np.__version__}",
               "n": n, "d": d, "fit_s_per_class": round(t_fit, 2), "peak_mb_per_class": round(peak / 2**20, 1),
               "alpha_batched_s": round(t_batched, 3), "alpha_loop_s_scaled": round(t_loop, 1),
               "alpha_speedup": round(t_loop / t_batched, 1), "identity_max_rel_err": float(err.max()),
               "imagenet_1000_classes_fit_min": round(1000 * t_fit / 60, 1)}
    print(f"fit of one class ({n} × {d}): {t_fit:.2f} s, peak {peak / 2**20:.0f} MB; 1,000 classes ≈ "
          f"{1000 * t_fit / 60:.0f} min")
    print(f"α of all {d} components on {n} images: batched {t_batched:.3f} s vs per-image loop {t_loop:.1f} s "
          f"(scaled from {k} images) → {t_loop / t_batched:.0f}×; identity max rel. error {err.max():.1e}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
