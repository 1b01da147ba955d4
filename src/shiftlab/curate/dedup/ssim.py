"""SSIM / DSSIM of image pairs in torch, batched over pairs (runs on any device).

Matches scikit-image ``structural_similarity(a, b, win_size=W, channel_axis=-1, data_range=255)`` with its
defaults (uniform W×W window, ``use_sample_covariance=True``, K1 = 0.01, K2 = 0.03): skimage filters with
``mode="reflect"`` and then crops ``(W-1)//2`` px from every side before averaging, so only the "valid"
windows count — exactly what an unpadded box filter yields. The box filter is a cumulative sum along
each axis (O(H·W) per map whatever the window) rather than a 35×35 convolution. Computed in float64:
``E[x²] − E[x]²`` on 0–255 values cancels badly in float32, while in float64 the window sums of integer
pixels and the differences that would cancel (N·Σx² − (Σx)², for windows up to ~430 px) are exact.
"""

from __future__ import annotations

import numpy as np
import torch

from shiftlab.errors import InputError


def default_batch_size(pixels_per_image: int, device: str | torch.device = "cpu") -> int:
    """Pairs per batch: 1 on a CPU, which is cache-bound (larger batches were up to 1.5× slower at 64–256 px,
    and never meaningfully faster; bench/RESULTS.md); on a GPU enough pairs for ~128 MiB a map."""
    return max(1, (1 << 24) // pixels_per_image) if torch.device(device).type == "cuda" else 1


def ssim_pairs(a, b, *, win_size: int = 35, data_range: float = 255.0, device: str | torch.device = "cpu",
               batch_size: int | None = None) -> np.ndarray:
    """SSIM of each pair ``(a[i], b[i])``.

    a, b: uint8 or float arrays (n, C, H, W) (channels first, as the decoded cache stores them).
    batch_size: pairs computed together [default: ``default_batch_size``].
    Returns float64 (n,): the mean over channels of each channel's mean SSIM over valid windows.
    """
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.ndim != 4:
        raise InputError(f"ssim_pairs needs two (n, C, H, W) arrays of one shape, got {a.shape} and {b.shape}")
    batch_size = batch_size or default_batch_size(int(np.prod(a.shape[1:])), device)
    h, w = a.shape[2:]
    if win_size > min(h, w) or win_size % 2 == 0:
        raise InputError(f"SSIM window {win_size} must be odd and at most the image side ({min(h, w)} px)")
    out = np.empty(len(a), np.float64)
    n_win = win_size * win_size
    cov_norm = n_win / (n_win - 1.0)
    # the constants scaled by N² (N = pixels in a window), since the formula below runs on window sums
    c1, c2 = ((0.01 * data_range) * n_win) ** 2, ((0.03 * data_range) * n_win) ** 2
    dev = torch.device(device)
    # uint8 pixels: the maps and their cumulative sums along a row are integers below 510² · W, which
    # int32 holds exactly for rows up to 8,256 px and at half float64's memory traffic; the second pass,
    # whose sums are larger, runs in float64 (exact below 2^53)
    dt = torch.int32 if a.dtype == b.dtype == np.uint8 and 510 ** 2 * w < 2 ** 31 else torch.float64
    for lo in range(0, len(a), batch_size):
        hi = min(len(a), lo + batch_size)
        x = torch.from_numpy(np.array(a[lo:hi])).to(dev, dt)
        y = torch.from_numpy(np.array(b[lo:hi])).to(dev, dt)
        # SSIM needs only 2·ux·uy, ux² + uy², 2·cov(x, y) and var x + var y. With s = x + y and d = x − y
        # they come from four maps instead of five (x, y, x², y², xy): 4·ux·uy = us² − ud²,
        # 2(ux² + uy²) = us² + ud², 4·E[xy] = E[s²] − E[d²], 2·E[x² + y²] = E[s²] + E[d²].
        maps = torch.empty((4, *x.shape), dtype=dt, device=dev)
        torch.add(x, y, out=maps[0])
        torch.sub(x, y, out=maps[1])
        torch.mul(maps[0], maps[0], out=maps[2])
        torch.mul(maps[1], maps[1], out=maps[3])
        ss, sd, sss, sdd = _window_sums(_window_sums(maps, win_size, -1).to(torch.float64), win_size, -2)
        # SSIM of the window means, multiplied through by N⁴. On integer pixels the sums, their squares and
        # the differences N·S_ss − S_s² (which would cancel in means) are exact integers in float64 (< 2^53);
        # only the constants, the scaling and the final products round, at relative error ~1e-16
        sq_diff = ss * ss - sd * sd  # N²·4·ux·uy
        sq_sum = (ss * ss).add_(sd * sd)  # N²·2(ux² + uy²)
        num = (0.5 * sq_diff + c1) * (sss - sdd).mul_(n_win).sub_(sq_diff).mul_(0.5 * cov_norm).add_(c2)
        den = (0.5 * sq_sum + c1) * (sss + sdd).mul_(n_win).sub_(sq_sum).mul_(0.5 * cov_norm).add_(c2)
        # every channel has the same number of windows: the mean of channel means is the mean over all
        out[lo:hi] = num.div_(den).flatten(1).mean(dim=1).cpu().numpy()
    return out


def _window_sums(x: torch.Tensor, k: int, dim: int) -> torch.Tensor:
    """Sums over every k-long window fully inside ``x`` along ``dim``, by a cumulative sum (O(n) whatever
    k; ``x`` is overwritten by its cumulative sum, which saves a copy of the maps)."""
    x.cumsum_(dim)
    n = x.shape[dim]
    out = torch.empty(x.shape[:dim % x.ndim] + (n - k + 1,) + x.shape[dim % x.ndim + 1:], dtype=x.dtype,
                      device=x.device)
    out.narrow(dim, 0, 1).copy_(x.narrow(dim, k - 1, 1))
    torch.sub(x.narrow(dim, k, n - k), x.narrow(dim, 0, n - k), out=out.narrow(dim, 1, n - k))
    return out


def dssim_pairs(a, b, **kw) -> np.ndarray:
    """(1 − SSIM) / 2 of each pair: 0 for identical images, up to 1."""
    return (1.0 - ssim_pairs(a, b, **kw)) / 2.0
