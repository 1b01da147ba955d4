"""SSIM / DSSIM of image pairs in torch, batched over pairs (runs on any device).

Matches scikit-image ``structural_similarity(a, b, win_size=W, channel_axis=-1, data_range=255)`` with its
defaults (uniform W×W window, ``use_sample_covariance=True``, K1 = 0.01, K2 = 0.03): skimage filters with
``mode="reflect"`` and then crops ``(W-1)//2`` px from every side before averaging, so only the "valid"
windows count — exactly what an unpadded box filter yields. The box filter is a summed-area table
(cumulative sums, O(H·W) per map whatever the window) rather than a 35×35 convolution. Computed in float64:
``E[x²] − E[x]²`` on 0–255 values cancels badly in float32, and the sums of integer pixels stay exact.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from shiftlab.errors import InputError


def ssim_pairs(a, b, *, win_size: int = 35, data_range: float = 255.0, device: str | torch.device = "cpu",
               batch_size: int = 32) -> np.ndarray:
    """SSIM of each pair ``(a[i], b[i])``.

    a, b: uint8 or float arrays (n, C, H, W) (channels first, as the decoded cache stores them).
    Returns float64 (n,): the mean over channels of each channel's mean SSIM over valid windows.
    """
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.ndim != 4:
        raise InputError(f"ssim_pairs needs two (n, C, H, W) arrays of one shape, got {a.shape} and {b.shape}")
    h, w = a.shape[2:]
    if win_size > min(h, w) or win_size % 2 == 0:
        raise InputError(f"SSIM window {win_size} must be odd and at most the image side ({min(h, w)} px)")
    out = np.empty(len(a), np.float64)
    np_ = win_size * win_size
    cov_norm = np_ / (np_ - 1.0)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    dev = torch.device(device)
    for lo in range(0, len(a), batch_size):
        hi = min(len(a), lo + batch_size)
        x = torch.from_numpy(np.array(a[lo:hi])).to(dev, torch.float64)
        y = torch.from_numpy(np.array(b[lo:hi])).to(dev, torch.float64)
        n, c = x.shape[:2]
        # one pooled pass over the five maps: (5·n·C, 1, H, W)
        maps = torch.stack([x, y, x * x, y * y, x * y]).reshape(5 * n * c, 1, h, w)
        m = _box_mean(maps, win_size).reshape(5, n, c, h - win_size + 1, w - win_size + 1)
        ux, uy, uxx, uyy, uxy = m
        vx = cov_norm * (uxx - ux * ux)
        vy = cov_norm * (uyy - uy * uy)
        vxy = cov_norm * (uxy - ux * uy)
        s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
        out[lo:hi] = s.mean(dim=(2, 3)).mean(dim=1).cpu().numpy()
    return out


def _box_mean(x: torch.Tensor, k: int) -> torch.Tensor:
    """Mean over every k×k window fully inside the image (like ``avg_pool2d(x, k, stride=1)``)."""
    s = F.pad(x, (1, 0, 1, 0)).cumsum(-1).cumsum(-2)
    return (s[..., k:, k:] - s[..., :-k, k:] - s[..., k:, :-k] + s[..., :-k, :-k]) / (k * k)


def dssim_pairs(a, b, **kw) -> np.ndarray:
    """(1 − SSIM) / 2 of each pair: 0 for identical images, up to 1."""
    return (1.0 - ssim_pairs(a, b, **kw)) / 2.0
