"""Near-duplicate detection speed: shiftlab's exact chunked kNN against scikit-learn's brute force and this
machine's float32 GEMM rate, and batched torch DSSIM against scikit-image's SSIM.

(a) exact top-100 kNN, 50,000 query × 50,000 reference vectors of 512 dims (float32, seeded Gaussian):
    ``shiftlab.metrics.neighbors.knn`` (FAISS IndexFlatL2 per chunk pair + float64 re-scoring; no cache_dir, so
    nothing is cached) vs ``sklearn.neighbors.NearestNeighbors(n_neighbors=100, algorithm="brute")
    .fit(ref).kneighbors(query)``. Figures: the speed ratio, and the fraction of this machine's float32 GEMM
    rate that the kNN achieves — the GEMM rate is measured in the same run (numpy float32
    (4096, 512) @ (512, 8192), best of 5, FLOP = 2·m·n·k; measured before and after the kNN, the higher
    rate counts) and the kNN's effective rate is
    2·n_query·n_ref·d / kNN seconds. Target fraction ≥ 0.5. Agreement: the fraction of sklearn's neighbour
    indices that are also in shiftlab's set for the same query (set overlap, so tie order does not count).
    sklearn runs on the first ``--sk-queries`` queries (default: all; fewer, against all references, scales
    its time linearly to all queries — brute force is linear in the query count); agreement is measured on
    the queries sklearn ran.
(b) DSSIM of 2,000 pairs of 256×256 RGB uint8 images — smooth random images (16×16 noise upscaled
    bilinearly, plus texture noise) and a perturbed copy of each (noise, brightness shift, 1-px shift):
    ``shiftlab.curate.dedup.ssim.dssim_pairs`` (torch; window sums by cumulative sums, exact on uint8) vs scikit-image
    ``structural_similarity(win_size=35, channel_axis=-1, data_range=255)`` per pair → (1 − ssim)/2.
    Target ≥ 10× speedup, max |difference| ≤ 1e-4. skimage runs on the first ``--sk-pairs`` pairs
    (default: all; fewer scales its time per pair) and values are compared on the pairs it ran. torch is
    timed on all pairs at ``default_batch_size`` (1 on a CPU, what ``dedup`` uses; or ``--dssim-batch``),
    reported as ``dssim_torch_s_bs1`` whatever the batch (``dssim_batch`` says which) so that runs compare;
    batch 32 is also timed, on 200 pairs, scaled per pair, for information.
(b) runs before (a), so that FAISS's OpenMP threads cannot slow torch down.

Usage: ``python bench/dedup.py [--n 50000] [--pairs 2000] [--sk-queries N] [--sk-pairs N] [--quick]``
(about 2 minutes on 2 cores). ``--quick``: n = 5,000, 200 pairs, sklearn on 1,000 queries and skimage on
100 pairs (scaled). The last line printed is one JSON object of the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import numpy as np
import torch


def gemm_rate(repeats: int = 5) -> float:
    """Best-of float32 GEMM rate in FLOP/s: (4096, 512) @ (512, 8192)."""
    rng = np.random.default_rng(1)
    m, k, n = 4096, 512, 8192
    x = rng.standard_normal((m, k), dtype=np.float32)
    y = rng.standard_normal((k, n), dtype=np.float32)
    out = np.empty((m, n), np.float32)
    np.matmul(x, y, out=out)  # warm-up
    best = np.inf
    for _ in range(repeats):
        t = time.perf_counter()
        np.matmul(x, y, out=out)
        best = min(best, time.perf_counter() - t)
    return 2.0 * m * n * k / best


def make_pairs(n: int, size: int = 256, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """n smooth random RGB images (n, 3, size, size) uint8 and a perturbed copy of each."""
    import torch.nn.functional as F

    g = torch.Generator().manual_seed(seed)
    a = np.empty((n, 3, size, size), np.uint8)
    b = np.empty_like(a)
    for lo in range(0, n, 100):
        hi = min(n, lo + 100)
        low = torch.rand((hi - lo, 3, 16, 16), generator=g) * 255
        img = F.interpolate(low, size=(size, size), mode="bilinear", align_corners=False)
        img = img + torch.randn(img.shape, generator=g) * 6
        pert = img.roll(1, dims=-1) + torch.randn(img.shape, generator=g) * 10 + 8
        a[lo:hi] = img.clamp(0, 255).round().to(torch.uint8).numpy()
        b[lo:hi] = pert.clamp(0, 255).round().to(torch.uint8).numpy()
    return a, b


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=50_000, help="queries = references")
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--k", type=int, default=100)
    ap.add_argument("--sk-queries", type=int, default=50_000, help="queries sklearn runs on (time scaled)")
    ap.add_argument("--pairs", type=int, default=2_000)
    ap.add_argument("--sk-pairs", type=int, default=2_000, help="pairs skimage runs on (time scaled)")
    ap.add_argument("--quick", action="store_true", help="n = 5,000, 200 pairs")
    ap.add_argument("--skip-knn", action="store_true")
    ap.add_argument("--skip-dssim", action="store_true")
    ap.add_argument("--device", default="cpu", help="device of the torch DSSIM (cuda[:N] on a GPU machine: the "
                                                   "≥ 10× target is for that case)")
    ap.add_argument("--dssim-batch", type=int, default=None, help="pairs per torch batch [default: "
                                                                  "ssim.default_batch_size]")
    args = ap.parse_args()
    if args.quick:
        args.n, args.pairs = 5_000, 200
        args.sk_queries, args.sk_pairs = min(args.sk_queries, 1_000), min(args.sk_pairs, 100)

    from shiftlab.curate.dedup.ssim import default_batch_size, dssim_pairs
    from shiftlab.metrics.neighbors import knn

    cores = os.cpu_count() or 1
    figures: dict = {"machine": f"{platform.machine()}, {cores} cores, torch {torch.__version__}"}

    # (b) DSSIM --------------------------------------------------------------------------------------
    if not args.skip_dssim:
        from skimage.metrics import structural_similarity

        a, b = make_pairs(args.pairs)
        cuda = args.device.startswith("cuda")
        bs = args.dssim_batch or default_batch_size(3 * 256 * 256, args.device)
        sync = torch.cuda.synchronize if cuda else (lambda: None)
        dssim_pairs(a[:2], b[:2], device=args.device)  # one-time set-up is neither side's cost
        sync()
        t = time.perf_counter()
        ours = dssim_pairs(a, b, win_size=35, data_range=255, batch_size=bs, device=args.device)
        sync()
        t_torch = time.perf_counter() - t
        n32 = min(200, args.pairs)  # batch 32 is slower on CPU: timed on a subset, scaled per pair
        t = time.perf_counter()
        ours32 = dssim_pairs(a[:n32], b[:n32], win_size=35, data_range=255, batch_size=32)
        t_torch32 = (time.perf_counter() - t) * args.pairs / n32
        # same float64 arithmetic in another order (and maybe on another device): equal to ~1e-12
        assert np.allclose(ours32, ours[:n32], rtol=0, atol=1e-9)
        ns = min(args.sk_pairs, args.pairs)
        t = time.perf_counter()
        ref_vals = np.array([(1.0 - structural_similarity(a[i].transpose(1, 2, 0), b[i].transpose(1, 2, 0),
                                                          win_size=35, channel_axis=-1, data_range=255)) / 2.0
                             for i in range(ns)])
        t_sk_sub = time.perf_counter() - t
        t_sk = t_sk_sub * args.pairs / ns
        diff = float(np.max(np.abs(ours[:ns] - ref_vals)))
        figures.update(dssim_pairs=args.pairs, image_size="256x256 RGB uint8", dssim_device=args.device,
                       dssim_batch=bs, dssim_torch_s_bs1=round(t_torch, 2),
                       dssim_torch_s_bs32_scaled=round(t_torch32, 2), dssim_torch_bs32_pairs_run=n32,
                       skimage_pairs_run=ns, skimage_s_run=round(t_sk_sub, 2), skimage_s_scaled=round(t_sk, 2),
                       dssim_speedup_vs_skimage=round(t_sk / t_torch, 2), dssim_max_abs_diff=diff,
                       dssim_mean=round(float(ours.mean()), 4))
        print(f"(b) DSSIM, {args.pairs} pairs 256×256 RGB: torch {t_torch:.1f}s (batch {bs}), batch 32 "
              f"{t_torch32:.1f}s scaled from {n32} pairs; skimage {t_sk_sub:.1f}s on {ns} pairs → {t_sk:.1f}s scaled → "
              f"{t_sk / t_torch:.2f}× (target ≥ 10); max |diff| {diff:.2e} (target ≤ 1e-4)")
    # (a) exact kNN -----------------------------------------------------------------------------------
    if not args.skip_knn:
        n, d, k = args.n, args.dim, args.k
        rng = np.random.default_rng(0)
        ref = rng.standard_normal((n, d), dtype=np.float32)
        query = rng.standard_normal((n, d), dtype=np.float32)
        rate = gemm_rate()
        t = time.perf_counter()
        _, idx = knn(query, ref, k)
        t_knn = time.perf_counter() - t
        eff = 2.0 * n * n * d / t_knn
        rate_before, rate_after = rate, gemm_rate()
        rate = max(rate_before, rate_after)  # the better of before and after, so that drift cannot flatter

        from sklearn.neighbors import NearestNeighbors

        nq = min(args.sk_queries, n)
        t = time.perf_counter()
        nn = NearestNeighbors(n_neighbors=k, algorithm="brute").fit(ref)
        _, sk_idx = nn.kneighbors(query[:nq])
        t_sk_sub = time.perf_counter() - t
        t_sk = t_sk_sub * n / nq
        overlap = np.mean([len(np.intersect1d(a, b)) / k for a, b in zip(idx[:nq], sk_idx)])
        same_order = float(np.mean(np.all(idx[:nq] == sk_idx, axis=1)))
        figures.update(knn_queries=n, knn_refs=n, knn_dim=d, knn_k=k, gemm_gflops=round(rate / 1e9, 1),
                       gemm_gflops_before_after=[round(rate_before / 1e9, 1), round(rate_after / 1e9, 1)],
                       knn_s=round(t_knn, 2), knn_effective_gflops=round(eff / 1e9, 1),
                       knn_gemm_fraction=round(eff / rate, 3), sklearn_queries_run=nq,
                       sklearn_s_run=round(t_sk_sub, 2), sklearn_s_scaled=round(t_sk, 2),
                       knn_speedup_vs_sklearn=round(t_sk / t_knn, 2), knn_set_agreement=round(float(overlap), 6),
                       knn_rows_identical_order=round(same_order, 6))
        print(f"(a) kNN top-{k}, {n}×{n}×{d}: shiftlab {t_knn:.1f}s = {eff / 1e9:.1f} GFLOP/s effective; "
              f"GEMM {rate / 1e9:.1f} GFLOP/s → fraction {eff / rate:.3f} (target ≥ 0.5); sklearn "
              f"{t_sk_sub:.1f}s on {nq} queries → {t_sk:.1f}s scaled → {t_sk / t_knn:.2f}×; "
              f"neighbour sets agree {overlap:.6f} (identical order in {same_order:.4f} of rows)")
        del ref, query, idx, sk_idx, nn

    print(json.dumps(figures))


if __name__ == "__main__":
    sys.exit(main())
