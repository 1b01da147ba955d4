"""The ``aligned`` metric: raw pixels at their best alignment (shift- and crop-invariant correlation)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from shiftlab.errors import InputError
from shiftlab.fsutil import atomic_save_npz
from shiftlab.metrics.neighbors import hash_rows, knn

# --- aligned: raw pixels at their best alignment --------------------------------------------------------
ALIGN_SIZE, ALIGN_SHIFT, ALIGN_MIN_CROP = 32, 1, 0.9


def align_views(size: int = ALIGN_SIZE, shift: int = ALIGN_SHIFT, min_crop: float = ALIGN_MIN_CROP) -> np.ndarray:
    """The views of the ``aligned`` metric: int64 (V, 3) rows ``(side, x0, y0)`` in thumbnail pixels, each
    the box [x0, x0 + side) × [y0, y0 + side) resized to the whole ``size``² thumbnail.

    The identity first; then the translations by up to ``shift`` px each way (full-side boxes reaching
    outside the image, whose edge pixels repeat); then every crop of side ``size − 1`` down to
    ceil(``min_crop`` · size) at every whole-pixel offset inside the image. 38 views at the defaults."""
    if size < 2 or shift < 0 or not 0 < min_crop <= 1:
        raise InputError("align_views: size ≥ 2, shift ≥ 0 and 0 < min_crop ≤ 1")
    views = [(size, 0, 0)]
    views += [(size, dx, dy) for dy in range(-shift, shift + 1) for dx in range(-shift, shift + 1) if dx or dy]
    smallest = max(1, int(np.ceil(min_crop * size - 1e-9)))
    for side in range(size - 1, smallest - 1, -1):
        views += [(side, x0, y0) for y0 in range(size - side + 1) for x0 in range(size - side + 1)]
    return np.asarray(views, np.int64)


def grey_thumbnails(pixels: np.ndarray, size: int = ALIGN_SIZE, *, batch: int = 512) -> np.ndarray:
    """uint8 (N, C, H, W) → float32 (N, size, size): grey (ITU-R 601 luma for RGB, the channel mean
    otherwise), area-averaged to ``size`` px. Read ``batch`` images at a time, so a memory map stays one."""
    import torch
    import torch.nn.functional as F

    out = np.empty((len(pixels), size, size), np.float32)
    luma = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    for lo in range(0, len(pixels), batch):
        x = torch.from_numpy(np.asarray(pixels[lo:lo + batch], np.float32))
        g = (x * luma).sum(1, keepdim=True) if x.shape[1] == 3 else x.mean(1, keepdim=True)
        out[lo:lo + len(x)] = F.interpolate(g, size=(size, size), mode="area")[:, 0].numpy()
    return out


def view_vectors(thumbs: np.ndarray, views: np.ndarray) -> np.ndarray:
    """float (n, s, s) thumbnails × int (V, 3) views → float32 (n·V, s²), image-major: every view
    resampled (bilinear; edge pixels repeat outside the image) and standardised to zero mean and unit
    norm (an exactly flat view stays all zeros), so squared L2 between two rows = 2 − 2·correlation."""
    import torch
    import torch.nn.functional as F

    n, s = len(thumbs), thumbs.shape[-1]
    v = torch.as_tensor(views, dtype=torch.float32)
    # the box [x0, x0 + side) in pixels as an affine map of the output's [-1, 1] (align_corners=False)
    theta = torch.zeros(len(v), 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = v[:, 0] / s
    theta[:, 0, 2] = (2 * v[:, 1] + v[:, 0]) / s - 1
    theta[:, 1, 2] = (2 * v[:, 2] + v[:, 0]) / s - 1
    grid = F.affine_grid(theta, [len(v), 1, s, s], align_corners=False)  # (V, s, s, 2)
    # the images as channels of one input: one sampling grid (all views stacked) serves them all
    x = torch.from_numpy(np.ascontiguousarray(thumbs, np.float32))[None]  # (1, n, s, s)
    y = F.grid_sample(x, grid.reshape(1, len(v) * s, s, 2), mode="bilinear", padding_mode="border",
                      align_corners=False)  # (1, n, V·s, s)
    y = y.reshape(n * len(v), s * s)
    y = y - y.mean(1, keepdim=True)
    norm = y.norm(dim=1)
    y /= norm.clamp_min(1e-6)[:, None]
    y[norm <= 1e-6] = 0.0
    return y.numpy()


def _best_per_reference(dist: np.ndarray, ref: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows of candidate (distance, reference row) pairs, a reference possibly repeated → each reference's
    smallest distance, the k best ascending, ties by the smaller row: (n, min(k, columns)); a row with
    fewer distinct references is padded with (inf, -1)."""
    order = np.lexsort((dist, ref), axis=1)  # by reference, then distance
    r, d = np.take_along_axis(ref, order, 1), np.take_along_axis(dist, order, 1)
    first = np.ones(r.shape, bool)
    first[:, 1:] = r[:, 1:] != r[:, :-1]
    first &= r >= 0
    d = np.where(first, d, np.inf)
    order = np.lexsort((r, d), axis=1)[:, :k]
    d, r = np.take_along_axis(d, order, 1), np.take_along_axis(r, order, 1)
    return d, np.where(np.isinf(d), -1, r)


#: pass (1) of ``aligned_knn`` first asks for this many view rows per wanted reference, and only the
#: queries whose rows hold too few distinct references again for all V per reference: on the digits world
#: 8 leaves a small share of the queries to redo, whereas asking for all V per reference at once made the
#: float64 re-scoring cost more than the search itself
_FIRST_TRY = 8


def aligned_knn(query: np.ndarray, reference: np.ndarray, k: int, *, views: np.ndarray | None = None,
                budget: int = 256 << 20, cache_dir: str | os.PathLike | None = None):
    """Exact k nearest references by the ``aligned`` distance (see the module doc).

    query (n, s, s), reference (m, s, s): grey thumbnails (``grey_thumbnails``); views: ``align_views(s)``
    by default. Returns ``dist`` float64 (n, k') ascending and ``idx`` int64 (n, k'), k' = min(k, m); ties
    go to the smaller reference row. The distance of a pair is the smallest of (1) the standardised query
    against every view of the reference and (2) every *crop* view of the query against the standardised
    reference. (Shifting the query by d is shifting the reference by −d but at the border, so shifts are
    tried on the reference's side only.) Both are exact ``knn`` searches, with views of at most
    ``budget`` bytes of images held at once: (1) asks for the nearest view rows until they hold k
    distinct references (every reference whose best view ranks in the top k is then among them: k·V
    rows always suffice); (2) asks for k per query view. Memory: the thumbnails and the standardised
    references (m·s² float32) stay whole. With ``cache_dir`` the result is stored under sha256(query,
    reference, views, k).
    """
    query = np.asarray(query, np.float32)
    reference = np.asarray(reference, np.float32)
    if query.ndim != 3 or reference.ndim != 3 or query.shape[1:] != reference.shape[1:]:
        raise InputError(f"aligned_knn needs (n, s, s) and (m, s, s) thumbnails, got {query.shape} and "
                         f"{reference.shape}")
    s = query.shape[-1]
    views = align_views(s) if views is None else np.asarray(views, np.int64)
    n, m, nv = len(query), len(reference), len(views)
    k = min(k, m)
    if n == 0 or k == 0:
        return np.zeros((n, k), np.float64), np.zeros((n, k), np.int64)
    f = None
    if cache_dir is not None:
        key = hashlib.sha256(f"{hash_rows(query)}|{hash_rows(reference)}|{hash_rows(views)}|{k}".encode())
        f = Path(cache_dir) / f"aligned-{key.hexdigest()[:32]}.npz"
        if f.is_file():
            with np.load(f) as z:
                return z["dist"], z["idx"]
    q0 = view_vectors(query, np.array([[s, 0, 0]]))
    crops = views[views[:, 0] < s]
    rows = max(1, budget // (nv * s * s * 4))  # images whose views fit in the budget
    best_d, best_i = np.full((n, k), np.inf), np.full((n, k), -1, np.int64)
    for lo in range(0, m, rows):  # (1) standardised queries against the references' views
        hi = min(m, lo + rows)
        rv = view_vectors(reference[lo:hi], views)
        want = min(k, hi - lo)
        d, i = knn(q0, rv, _FIRST_TRY * k)
        d, i = _best_per_reference(d, lo + i // nv, want)
        # the first try's views hold ≥ want distinct references for most queries; the rest look at all views
        redo = np.flatnonzero(np.isinf(d).any(1))
        if len(redo):
            dr, ir = knn(q0[redo], rv, k * nv)
            d[redo], i[redo] = _best_per_reference(dr, lo + ir // nv, want)
        best_d, best_i = _best_per_reference(np.concatenate([best_d, d], 1), np.concatenate([best_i, i], 1), k)
    if len(crops):
        r0 = view_vectors(reference, np.array([[s, 0, 0]]))
        for lo in range(0, n, rows):  # (2) the queries' crops against standardised references
            hi = min(n, lo + rows)
            d, i = knn(view_vectors(query[lo:hi], crops), r0, k)
            d, i = d.reshape(hi - lo, -1), i.reshape(hi - lo, -1)
            best_d[lo:hi], best_i[lo:hi] = _best_per_reference(np.concatenate([best_d[lo:hi], d], 1),
                                                               np.concatenate([best_i[lo:hi], i], 1), k)
    if f is not None:
        f.parent.mkdir(parents=True, exist_ok=True)
        atomic_save_npz(f, dist=best_d, idx=best_i)
    return best_d, best_i
