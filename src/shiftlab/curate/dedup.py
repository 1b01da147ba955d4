"""Near-duplicate detection and resolution, as ImageNetV2 did it (SPECS S1.3, S1.4).

Detection: every query image gets its ``k`` nearest references per metric and reference set, in a
``NeighbourTable`` (a DataFrame, one row per neighbour):

    query_id, reference_split, reference_id, metric, rank, distance, is_self, same_source

``rank`` counts from 0 within (query_id, reference_split, metric), ascending distance, ties by reference
row; the image itself is kept (distance 0, ``is_self``), as ImageNetV2 kept it. ``same_source`` is true
when both images carry the same non-null ``source_id`` attribute. Ids are taken as global: a query and a
reference with the same id are the same image.

Metrics, all on the "scaled" copy (``size``×``size`` RGB uint8, aspect ratio not kept; 256 in S1.3):
  - ``l2``: squared Euclidean distance on raw pixels (size²·3 values; 196,608 at 256 px).
  - ``embedding``: squared L2 between a model's penultimate features (``fc7`` is an alias). These are
    computed by the prediction engine with *the model's own recipe* (e.g. 32 px for the world models),
    not on the scaled copy.
  - ``phash``: Hamming distance (bits) of ``imagehash.phash`` 64-bit hashes.
  - ``aligned`` (ours): l2 that tolerates the small crops and shifts near-duplicates carry (a re-upload
    cropped a little and resized back, a scan moved by a pixel). Each image becomes a grey ``align_size``²
    thumbnail (32 px by default, area-averaged from the scaled copy); the distance is the squared L2
    between *standardised* (zero-mean, unit-norm) thumbnails at the best of a few views (``align_views``):
    shifts by up to ``ALIGN_SHIFT`` (1) thumbnail pixel, edge pixels repeated, and crops keeping at least
    ``ALIGN_MIN_CROP`` (90 %) of the side at every whole-pixel offset, resized back — 38 views with the
    identity: 8 shifts, 4 + 9 + 16 crops of 31, 30 and 29 px. The reference is shifted or cropped to
    match the query, and the query cropped to match the reference, so a copy is found whichever of the
    two is the crop (and the distance is symmetric up to border pixels). It equals 2 − 2·(best normalised
    cross-correlation), in [0, 4] whatever the image size, brightness or contrast, so its threshold
    (0.02 ⇔ correlation ≥ 0.99) carries across datasets, unlike the raw-pixel ones. The search is exact
    (``aligned_knn``). Why: raw-pixel l2, phash and a classifier's embedding all rank a copy shifted or
    cropped by a few percent behind many distinct images of its class when images resemble one another
    (digits, product shots), while at its best alignment it is almost an exact match.
  - ``dssim``: (1 − SSIM)/2, SSIM as scikit-image's with a 35-px window (``shiftlab.curate.ssim``). It is
    only computed on a shortlist — the union of the other metrics' top-k pairs (l2's when dssim is
    alone) — and ranked within it; never on all pairs. Cost: about 2.7 ms per 256-px pair on 2 CPU
    cores (exact window sums, one pair at a time; bench/RESULTS.md), far less batched on a GPU (``device``).

All top-k searches are exact (``knn``): FAISS shortlists per chunk pair, the shortlist is re-scored in
float64 and merged by (distance, reference row), so chunked and unchunked runs agree, and chunk results
are cached by content hash.

Review (S1.3): ``review_queue`` lists every (query, neighbour, metric) among the first ``review_k`` that is
neither the image itself nor of the same source and is within the metric's threshold. That DataFrame —
``query_id, reference_id, reference_split, metric, distance, rank`` — is what the review app consumes;
decisions come back as a CSV ``query,reference,is_duplicate,reviewer`` (``read_review_csv``).

Resolution (S1.4): ``resolve_duplicates``.
"""

from __future__ import annotations

import csv
import hashlib
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from shiftlab.errors import InputError
from shiftlab.fsutil import atomic_save_npz
from shiftlab.progress import bar

#: ImageNetV2's review thresholds for 256-px natural photos. ``phash`` is ours (ImageNetV2 had none):
#: ≤ 10 of 64 bits differ — re-encodings and small edits land at 0–6, unrelated photos near 32.
#: ``aligned`` is ours too: 0.02 ⇔ normalised cross-correlation ≥ 0.99 at the best view. The distance is
#: scale-free, so one number serves any image size and set (on three digits worlds the planted re-encoded,
#: shifted, brightened and cropped copies land at ≤ 0.013, the closest distinct pair at ≥ 0.022).
IMAGENETV2_THRESHOLDS: dict[str, float] = {"l2": 1.2e8, "dssim": 0.2205, "embedding": 1.32e4, "fc7": 1.32e4,
                                           "phash": 10.0, "aligned": 0.02}
METRICS = ("l2", "embedding", "phash", "aligned", "dssim")
NO_THRESHOLD = 1e100
TABLE_COLUMNS = ["query_id", "reference_split", "reference_id", "metric", "rank", "distance", "is_self",
                 "same_source"]
QUEUE_COLUMNS = ["query_id", "reference_id", "reference_split", "metric", "distance", "rank"]

NeighbourTable = pd.DataFrame  # the columns of TABLE_COLUMNS; parameters in ``.attrs``


# --- exact, chunked top-k ---------------------------------------------------------------------------
def _hash_rows(a: np.ndarray) -> str:
    h = hashlib.sha256(f"{a.dtype.str}{a.shape}".encode())
    h.update(np.ascontiguousarray(a).data)
    return h.hexdigest()


def _sq_dist64(q: np.ndarray, reference: np.ndarray, idx: np.ndarray, budget: int = 4 << 20) -> np.ndarray:
    """Squared distances in float64 of q[j] to reference[idx[j, c]]: (n, c), independent of batching
    (each row is one contiguous sum over d, whatever the block), vectorised over blocks of queries.
    Blocks of ~4 MB stay in the CPU's cache across the gather, subtract, square and sum: a whole
    20,000² × 512 ``knn`` took 7.1 s with them against 8.6 s with 64 MB blocks (bench/RESULTS.md)."""
    n, c = idx.shape
    d = q.shape[1]
    out = np.empty((n, c), np.float64)
    step = max(1, budget // max(1, c * d * 8))
    for lo in range(0, n, step):
        hi = min(n, lo + step)
        diff = np.asarray(reference[idx[lo:hi]], dtype=np.float64) - np.asarray(q[lo:hi], np.float64)[:, None, :]
        out[lo:hi] = np.square(diff, out=diff).sum(axis=-1)
    return out


def _knn_chunk(q: np.ndarray, reference: np.ndarray, k: int, ref_chunk: int, margin: int):
    import faiss

    n, m = len(q), len(reference)
    qf = np.ascontiguousarray(q, dtype=np.float32)
    best_d = np.full((n, 0), np.inf)
    best_i = np.zeros((n, 0), np.int64)
    for lo in range(0, m, ref_chunk):
        hi = min(m, lo + ref_chunk)
        r = np.ascontiguousarray(reference[lo:hi], dtype=np.float32)
        index = faiss.IndexFlatL2(r.shape[1])
        index.add(r)
        kk = min(hi - lo, k + margin)
        _, i = index.search(qf, kk)
        i = i.astype(np.int64) + lo
        # re-score exactly: FAISS distances depend on batch shapes; these do not
        d = _sq_dist64(q, reference, i)
        best_d, best_i = np.concatenate([best_d, d], 1), np.concatenate([best_i, i], 1)
        order = np.lexsort((best_i, best_d), axis=1)[:, :k + margin]
        best_d = np.take_along_axis(best_d, order, 1)
        best_i = np.take_along_axis(best_i, order, 1)
    return best_d[:, :k], best_i[:, :k]


def knn(query: np.ndarray, reference: np.ndarray, k: int, *, metric: str = "l2", chunk: int = 4096,
        ref_chunk: int | None = None, cache_dir: str | os.PathLike | None = None, margin: int = 8):
    """Exact k nearest references of each query row.

    query (n, d), reference (m, d): any numeric dtype (uint8 pixels stay uint8 until a chunk is used).
    metric: ``l2`` (squared Euclidean; on 0/1 bit vectors it is the Hamming distance).
    Returns ``dist`` float64 (n, k') ascending and ``idx`` int64 (n, k'), k' = min(k, m); ties go to the
    smaller reference row. Queries go in chunks of ``chunk`` rows against references in chunks of
    ``ref_chunk`` rows (default: as many as fit in ~512 MB of float32; FAISS ``IndexFlatL2`` shortlists
    ``k + margin`` per chunk pair; the shortlist is
    re-scored in float64), so no distance matrix larger than one chunk pair is ever held. With
    ``cache_dir``, each query chunk's result is stored under sha256(chunk bytes, reference hash, k).
    """
    if metric != "l2":
        raise InputError(f"knn metric must be 'l2', not {metric!r}")
    query, reference = np.asarray(query), np.asarray(reference)
    if query.ndim != 2 or reference.ndim != 2 or query.shape[1] != reference.shape[1]:
        raise InputError(f"knn needs (n, d) and (m, d) arrays, got {query.shape} and {reference.shape}")
    # at most ~512 MB of float32 per chunk: whole reference sets of embeddings, a few hundred raw 256-px images
    rows_in_budget = max(64, (512 << 20) // (4 * max(1, query.shape[1])))
    ref_chunk = rows_in_budget if ref_chunk is None else ref_chunk
    chunk = min(chunk, rows_in_budget)
    if k < 1 or chunk < 1 or ref_chunk < 1:
        raise InputError("knn: k, chunk and ref_chunk must be at least 1")
    n, m = len(query), len(reference)
    k = min(k, m)
    dist, idx = np.zeros((n, k), np.float64), np.zeros((n, k), np.int64)
    if n == 0 or k == 0:
        return dist, idx
    cache = Path(cache_dir) if cache_dir is not None else None
    ref_hash = _hash_rows(reference) if cache is not None else ""
    for lo in range(0, n, chunk):
        hi = min(n, lo + chunk)
        q = query[lo:hi]
        f = None
        if cache is not None:
            key = hashlib.sha256(f"{_hash_rows(q)}|{ref_hash}|{k}|{margin}".encode()).hexdigest()
            f = cache / f"knn-{key[:32]}.npz"
            if f.is_file():
                with np.load(f) as z:
                    dist[lo:hi], idx[lo:hi] = z["dist"], z["idx"]
                continue
        d, i = _knn_chunk(q, reference, k, ref_chunk, margin)
        dist[lo:hi], idx[lo:hi] = d, i
        if f is not None:
            f.parent.mkdir(parents=True, exist_ok=True)
            atomic_save_npz(f, dist=d, idx=i)
    return dist, idx


# --- per-image representations ---------------------------------------------------------------------
def scaled_recipe(size: int = 256):
    """The recipe of the "scaled" copy: size×size RGB uint8, aspect ratio not kept, no normalisation."""
    from shiftlab.models.recipes import Recipe

    return Recipe(resize=size, crop=None, square=True, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))


def scaled_pixels(manifest, workspace=None, *, size: int = 256, progress: bool = False):
    """(uint8 (N, 3, size, size) memory map, valid mask (N,)), decoded once into the workspace cache."""
    from shiftlab.predict.cache import DecodedCache
    from shiftlab.workspace import Workspace

    ws = workspace if isinstance(workspace, Workspace) else Workspace.resolve(workspace)
    cache = DecodedCache(manifest, scaled_recipe(size), ws, progress=progress).build()
    return cache.pixels(), cache.valid_mask()


def phash_bits(pixels: np.ndarray) -> np.ndarray:
    """uint8 (N, 3, H, W) → uint8 (N, 64) of 0/1: the bits of ``imagehash.phash`` of each image."""
    import imagehash
    from PIL import Image

    out = np.zeros((len(pixels), 64), np.uint8)
    for i in range(len(pixels)):
        img = Image.fromarray(np.ascontiguousarray(np.asarray(pixels[i]).transpose(1, 2, 0)))
        out[i] = imagehash.phash(img).hash.reshape(-1)
    return out


def embeddings(manifest, model: str, workspace=None, *, device: str = "auto", progress: bool = False):
    """(float32 (N, D) penultimate features of ``model`` on its own recipe, valid mask (N,))."""
    from shiftlab.predict.engine import predict

    p = predict(manifest, [model], workspace=workspace, features=True, device=device, progress=progress)[0]
    return np.nan_to_num(p.features.astype(np.float32)), p.valid


def _flat(pixels: np.ndarray) -> np.ndarray:
    return pixels.reshape(len(pixels), -1)  # a memory map stays one: knn reads it a chunk at a time


def _rows(a: np.ndarray, rows: np.ndarray) -> np.ndarray:
    return a if len(rows) == len(a) else a[rows]  # a copy only when undecodable rows must go


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
        key = hashlib.sha256(f"{_hash_rows(query)}|{_hash_rows(reference)}|{_hash_rows(views)}|{k}".encode())
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


# --- detection ---------------------------------------------------------------------------------------
def find_near_duplicates(query, references: Mapping[str, object], metrics: Iterable[str] = ("l2", "phash", "dssim"),
                         k: int = 100, *, review_k: int = 30, model: str | None = None, size: int = 256,
                         align_size: int = ALIGN_SIZE, workspace=None, device: str = "auto", dssim_window: int = 35,
                         dssim_k: int | None = None, chunk: int = 4096,
                         reference_metrics: Mapping[str, Iterable[str]] | None = None,
                         cache_dir: str | os.PathLike | None = None, progress: bool = False) -> NeighbourTable:
    """The k nearest references of every query image, per metric and reference set (see the module doc).

    query: a Manifest (the candidates); references: name → Manifest (e.g. train, val, test, and the
    candidates themselves). metrics: any of ``l2, embedding (alias fc7), phash, aligned, dssim``;
    ``embedding`` needs ``model`` (a model spec, e.g. ``world:cnn-medium-s0``). dssim is ranked within the
    shortlist of the other metrics' top ``dssim_k`` pairs (default ``review_k``; all ``k`` of l2 when dssim
    is alone). ``reference_metrics``: name → the metrics to use against that set (default: all of
    ``metrics``), e.g. dssim only against a few sets, as ImageNetV2 did (S1.3); dssim's shortlist comes
    from the other metrics run against the same set.
    ``size``: side of the scaled copy in px (256 in S1.3); ``align_size``: side of the ``aligned``
    metric's grey thumbnails, area-averaged from the scaled copy (2 ≤ align_size ≤ size). Undecodable
    images are left out (``table.attrs["excluded"]`` counts them per set). ``cache_dir`` defaults to
    ``<workspace>/cache/knn``.
    """
    from shiftlab.workspace import Workspace

    metrics = ["embedding" if m == "fc7" else m for m in metrics]
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise InputError(f"unknown near-duplicate metric(s) {', '.join(unknown)}; use {', '.join(METRICS)}")
    if not metrics:
        raise InputError("give at least one near-duplicate metric")
    if "embedding" in metrics and not model:
        raise InputError("the embedding metric needs a model (e.g. --model world:cnn-medium-s0)")
    if not references:
        raise InputError("give at least one reference set")
    if "aligned" in metrics and not 2 <= align_size <= size:
        raise InputError(f"align_size must be between 2 and size ({size}), not {align_size}")
    per_ref = {n: ["embedding" if m == "fc7" else m for m in (reference_metrics or {}).get(n, metrics)]
               for n in references}
    stray = sorted({m for ms in per_ref.values() for m in ms} - set(metrics))
    if stray or set(reference_metrics or {}) - set(references):
        raise InputError("reference_metrics must name given reference sets and metrics among "
                         f"{', '.join(metrics)}" + (f" (not {', '.join(stray)})" if stray else ""))
    ws = workspace if isinstance(workspace, Workspace) else Workspace.resolve(workspace)
    if cache_dir is None:
        cache_dir = ws.root / "cache" / "knn"

    sets = {"__query__": query, **dict(references)}
    pix, valid, reps = {}, {}, {}
    need_pixels = any(m in metrics for m in ("l2", "phash", "aligned", "dssim"))
    for name, man in sets.items():
        v = np.ones(len(man), bool)
        if need_pixels:
            pix[name], pv = scaled_pixels(man, ws, size=size, progress=progress)
            v &= pv
        if "embedding" in metrics:
            feats, fv = embeddings(man, model, ws, device=device, progress=progress)
            reps[(name, "embedding")] = feats
            v &= fv
        if "phash" in metrics:
            reps[(name, "phash")] = phash_bits(pix[name])
        if "aligned" in metrics:
            reps[(name, "aligned")] = grey_thumbnails(pix[name], align_size)
        valid[name] = np.flatnonzero(v)

    def source_ids(man):
        t = man.table
        return t["source_id"].to_numpy(object) if "source_id" in t.columns else np.full(len(t), None, object)

    q_ids, q_src = query.ids, source_ids(query)
    q_rows = valid["__query__"]
    frames = []
    for ref_name, ref in references.items():
        r_rows = valid[ref_name]
        r_ids, r_src = ref.ids, source_ids(ref)
        pairs = {}  # metric → (dist (nq, k'), ref row (nq, k'))
        for metric in [m for m in per_ref[ref_name] if m != "dssim"]:
            if metric == "l2":
                qa, ra = _flat(pix["__query__"]), _flat(pix[ref_name])
            else:
                qa, ra = reps[("__query__", metric)], reps[(ref_name, metric)]
            if metric == "aligned":
                d, i = aligned_knn(_rows(qa, q_rows), _rows(ra, r_rows), k, cache_dir=cache_dir)
            else:
                d, i = knn(_rows(qa, q_rows), _rows(ra, r_rows), k, chunk=chunk, cache_dir=cache_dir)
            pairs[metric] = (d, r_rows[i])
        if "dssim" in per_ref[ref_name]:
            if not pairs:  # dssim alone: shortlist by l2
                qa, ra = _flat(pix["__query__"]), _flat(pix[ref_name])
                d, i = knn(_rows(qa, q_rows), _rows(ra, r_rows), k, chunk=chunk, cache_dir=cache_dir)
                short = [r_rows[i]]
            else:
                short = [r[:, :dssim_k or review_k] for _, r in pairs.values()]
            pairs["dssim"] = _dssim_neighbours(pix["__query__"], pix[ref_name], q_rows, np.concatenate(short, 1), k,
                                               window=dssim_window, device=device, progress=progress)
        for metric, (d, r) in pairs.items():
            nq, kk = d.shape
            qi = np.repeat(q_rows, kk)
            ri = r.reshape(-1)
            keep = ri >= 0
            qs, rs = q_src[qi], r_src[ri.clip(0)]
            frames.append(pd.DataFrame({
                "query_id": q_ids[qi], "reference_split": ref_name, "reference_id": r_ids[ri.clip(0)],
                "metric": metric, "rank": np.tile(np.arange(kk), nq), "distance": d.reshape(-1),
                "is_self": q_ids[qi] == r_ids[ri.clip(0)],
                "same_source": np.array([a is not None and a == b for a, b in zip(qs, rs)], bool),
            })[keep])
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=TABLE_COLUMNS)
    table = table[TABLE_COLUMNS]
    table["rank"] = table.groupby(["query_id", "reference_split", "metric"]).cumcount().astype(np.int64)
    table.attrs.update({"k": k, "review_k": review_k, "size": size, "model": model, "metrics": list(metrics),
                        "align_size": align_size if "aligned" in metrics else None,
                        "reference_metrics": per_ref,
                        "excluded": {n: int(len(m) - len(valid[n])) for n, m in sets.items()}})
    return table


def _dssim_neighbours(qpix, rpix, q_rows, shortlist, k, *, window, device, progress=False):
    """Rank each query's shortlisted reference rows by DSSIM: (dist (nq, k'), ref rows (nq, k'), -1 padded)."""
    from shiftlab.curate.ssim import default_batch_size, dssim_pairs
    from shiftlab.predict.engine import resolve_device

    dev = resolve_device(device)
    nq = len(q_rows)
    uniq = [np.unique(shortlist[j]) for j in range(nq)]
    qa = np.concatenate([np.full(len(u), q_rows[j]) for j, u in enumerate(uniq)]) if nq else np.zeros(0, int)
    ra = np.concatenate(uniq) if nq else np.zeros(0, int)
    scores = np.empty(len(qa), np.float64)
    batch = default_batch_size(int(np.prod(qpix.shape[1:])), dev)
    step = max(batch * 16, 1024)  # pairs gathered from the pixel caches at a time
    with bar(f"dssim on {len(qa)} shortlisted pairs", len(qa), disable=not progress) as b:
        for lo in range(0, len(qa), step):
            hi = min(len(qa), lo + step)
            scores[lo:hi] = dssim_pairs(np.asarray(qpix[qa[lo:hi]]), np.asarray(rpix[ra[lo:hi]]),
                                        win_size=window, device=dev, batch_size=batch)
            b.advance(hi - lo)
    kk = min(k, max((len(u) for u in uniq), default=0))
    dist = np.full((nq, kk), np.inf)
    rows = np.full((nq, kk), -1, np.int64)
    at = 0
    for j, u in enumerate(uniq):
        s = scores[at:at + len(u)]
        at += len(u)
        order = np.lexsort((u, s))[:kk]
        dist[j, :len(order)], rows[j, :len(order)] = s[order], u[order]
    return dist, rows


# --- review ------------------------------------------------------------------------------------------
def review_queue(table: NeighbourTable, thresholds: Mapping[str, float] | None = None, *,
                 review_k: int = 30) -> pd.DataFrame:
    """The pairs to show a reviewer (S1.3): neighbours among the first ``review_k`` (rank < review_k) that
    are not the image itself, not of the same source, and within the metric's threshold (≤).

    thresholds: metric → distance, over ``IMAGENETV2_THRESHOLDS`` (``queue_thresholds``). Returns
    ``QUEUE_COLUMNS`` sorted by metric, query_id, rank; a (candidate, metric) is queued when it has at least
    one row.
    """
    t = queue_thresholds(table, thresholds, review_k=review_k)
    thr = table["metric"].map(t).astype(float).fillna(-np.inf)
    q = table[(table["rank"] < review_k) & ~table["is_self"] & ~table["same_source"] & (table["distance"] <= thr)]
    return q.sort_values(["metric", "query_id", "rank", "reference_split"])[QUEUE_COLUMNS].reset_index(drop=True)


def queue_thresholds(table: NeighbourTable, thresholds: Mapping[str, float] | None = None, *,
                     quantile: float | None = None, review_k: int = 30) -> dict[str, float]:
    """The review threshold of each metric in ``table``: ``IMAGENETV2_THRESHOLDS``, or with ``quantile``
    those read off the data (``quantile_thresholds``); ``thresholds`` (metric → distance; ``fc7`` also
    names embedding's) override either."""
    explicit = dict(thresholds or {})
    if "fc7" in explicit:  # ImageNetV2's name for the embedding metric's threshold
        explicit.setdefault("embedding", explicit["fc7"])
    chosen = {**IMAGENETV2_THRESHOLDS,
              **(quantile_thresholds(table, quantile, review_k=review_k) if quantile is not None else {}),
              **explicit}
    return {m: t for m, t in chosen.items() if m in set(table["metric"])}


#: metrics whose threshold means the same on any data and at any size (``aligned``: a correlation), which
#: ``quantile_thresholds`` therefore leaves at their own value
SCALE_FREE = ("aligned",)


def quantile_thresholds(table: pd.DataFrame, q: float = 0.2, *, review_k: int = 30) -> dict[str, float]:
    """Review thresholds read off the data: per metric, the ``q`` quantile of the distances to the first
    ``review_k`` neighbours that are neither the image itself nor of the same source; ``SCALE_FREE``
    metrics keep their own threshold.

    For sets unlike ImageNetV2's photos (e.g. the digits world, whose images resemble one another far more)
    or compared at another size than 256 px, where the published thresholds mean nothing."""
    if not 0 < q < 1:
        raise InputError(f"threshold quantile {q} must lie between 0 and 1 (e.g. 0.02)")
    eligible = table[~table["is_self"] & ~table["same_source"]]
    out = {}
    for m, g in eligible.groupby("metric"):
        looked_at = g[g["rank"] < review_k]
        # a metric whose first review_k neighbours are all the image itself or its own source: the
        # quantile of the deeper ones, rather than ImageNetV2's 256-px default through the merge
        out[str(m)] = (IMAGENETV2_THRESHOLDS[m] if m in SCALE_FREE
                       else float(np.quantile((looked_at if len(looked_at) else g)["distance"], q)))
    return out


def _pair_set(pairs) -> set[frozenset]:
    return {frozenset((str(a), str(b))) for a, b in pairs}


def review_thresholds(table: NeighbourTable, reviewed_pairs: Iterable[tuple[str, str]] = (),
                      blacklisted: Iterable[str] = ()) -> pd.DataFrame:
    """Each query's review threshold per metric (S1.3): the distance of its first neighbour that is not
    itself, not in a reviewed pair (either order), not of the same source and not blacklisted; 1e100 when
    none. Returns a DataFrame indexed by query_id, one column per metric."""
    reviewed = _pair_set(reviewed_pairs)
    black = {str(b) for b in blacklisted}
    t = table[~table["is_self"] & ~table["same_source"] & ~table["reference_id"].isin(black)]
    if reviewed and len(t):
        done = np.array([frozenset((a, b)) in reviewed for a, b in zip(t["query_id"], t["reference_id"])], bool)
        t = t[~done]
    first = t.groupby(["query_id", "metric"])["distance"].min().unstack("metric")
    queries = pd.Index(sorted(table["query_id"].unique()), name="query_id")
    metrics = sorted(table["metric"].unique())
    return first.reindex(index=queries, columns=metrics).fillna(NO_THRESHOLD)


_TRUE = {"1", "true", "yes", "y", "t", "duplicate"}
_FALSE = {"0", "false", "no", "n", "f", "distinct"}
REVIEW_COLUMNS = ["query", "reference", "is_duplicate", "reviewer"]


def read_review_csv(path: str | os.PathLike) -> pd.DataFrame:
    """Review decisions: CSV with header ``query,reference,is_duplicate,reviewer`` (is_duplicate one of
    true/false, 1/0, yes/no). Returns those columns with is_duplicate as bool; InputError on anything else."""
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: cannot read review decisions ({e})") from None
    if not rows:
        raise InputError(f"{path}: empty; expected a header {','.join(REVIEW_COLUMNS)}")
    header = [h.strip() for h in rows[0]]
    if sorted(header) != sorted(REVIEW_COLUMNS) or len(header) != len(REVIEW_COLUMNS):
        extra = sorted(set(header) - set(REVIEW_COLUMNS))
        missing = sorted(set(REVIEW_COLUMNS) - set(header))
        raise InputError(f"{path}: review CSV needs columns {','.join(REVIEW_COLUMNS)}"
                         + (f"; unknown: {','.join(extra)}" if extra else "")
                         + (f"; missing: {','.join(missing)}" if missing else ""))
    out = []
    for n, row in enumerate(rows[1:], start=2):
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) != len(header):
            raise InputError(f"{path}:{n}: {len(row)} fields, expected {len(header)}")
        rec = dict(zip(header, (c.strip() for c in row)))
        v = rec["is_duplicate"].lower()
        if v not in _TRUE | _FALSE:
            raise InputError(f"{path}:{n}: is_duplicate {rec['is_duplicate']!r} is not true/false")
        if not rec["query"] or not rec["reference"]:
            raise InputError(f"{path}:{n}: empty query or reference id")
        rec["is_duplicate"] = v in _TRUE
        out.append(rec)
    return pd.DataFrame(out, columns=REVIEW_COLUMNS).astype({"is_duplicate": bool})


def duplicate_links(reviews: pd.DataFrame) -> list[tuple[str, str]]:
    """The (query, reference) pairs judged duplicates (the later decision on a pair wins)."""
    last = {}
    for a, b, d in zip(reviews["query"], reviews["reference"], reviews["is_duplicate"]):
        last[frozenset((str(a), str(b)))] = (str(a), str(b), bool(d))
    return [(a, b) for a, b, d in last.values() if d]


# --- resolution --------------------------------------------------------------------------------------
GOOD, FALLBACK = 0.7, 0.6


def resolve_duplicates(candidates: pd.DataFrame, duplicate_links: Iterable[tuple[str, str]],
                       original_ids: Iterable[str] = (), overrides: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Which candidates survive near-duplicate resolution (S1.4).

    candidates: id, class, frequency (selection frequency; NaN counts as 0), source_id (may be null).
    Graph: duplicate links (may name original-dataset images) + links between candidates sharing a source
    id. A component is named by its smallest candidate id. One with an original image drops all its
    candidates; otherwise one candidate is kept: ``overrides[component] (or [any member id]) → keep id``;
    else among classes whose best in-component frequency ≥ 0.7 (else ≥ 0.6, else the classes at the max)
    the class with the fewest ≥ 0.7 candidates (ties by class name), and its highest-frequency candidate
    (ties by the larger id). Returns id, keep, component, reason in the candidates' order.
    """
    need = {"id", "class", "frequency"}
    if need - set(candidates.columns):
        raise InputError(f"candidates lack column(s) {', '.join(sorted(need - set(candidates.columns)))}")
    ids = candidates["id"].astype(str).tolist()
    if len(set(ids)) != len(ids):
        raise InputError("candidates have duplicate ids")
    cls = dict(zip(ids, candidates["class"].astype(str)))
    freq = dict(zip(ids, pd.to_numeric(candidates["frequency"], errors="coerce").fillna(0.0).astype(float)))
    originals = {str(o) for o in original_ids}
    parent: dict[str, str] = {}

    def find(x):
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def union(a, b):
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)

    for i in ids:
        find(i)
    for a, b in duplicate_links:
        union(str(a), str(b))
    if "source_id" in candidates.columns:
        first_of: dict[str, str] = {}
        for i, s in zip(ids, candidates["source_id"]):
            if s is None or (isinstance(s, float) and np.isnan(s)):
                continue
            if s in first_of:
                union(first_of[s], i)
            else:
                first_of[s] = i
    members: dict[str, list[str]] = {}
    for x in list(parent):
        members.setdefault(find(x), []).append(x)
    cand_set = set(ids)
    comp_name = {r: min(x for x in m if x in cand_set) for r, m in members.items() if any(x in cand_set for x in m)}
    over = {}
    for key, keep_id in (overrides or {}).items():
        key, keep_id = str(key), str(keep_id)
        if key not in parent:
            raise InputError(f"override for unknown component {key!r}")
        root = find(key)
        if keep_id not in cand_set or find(keep_id) != root:
            raise InputError(f"override keeps {keep_id!r}, which is not a candidate of component {comp_name[root]!r}")
        over[root] = keep_id

    decision: dict[str, tuple[bool, str]] = {}
    for root, m in members.items():
        cands = sorted(x for x in m if x in cand_set)
        if not cands:
            continue
        origs = sorted(x for x in m if x in originals)
        if origs:
            for x in cands:
                decision[x] = (False, f"duplicate of original {origs[0]}")
            continue
        if len(cands) == 1:
            decision[cands[0]] = (True, "unique")
            continue
        if root in over:
            keep, why = over[root], "override"
        else:
            by_class: dict[str, list[str]] = {}
            for x in cands:
                by_class.setdefault(cls[x], []).append(x)
            best = {c: max(freq[x] for x in xs) for c, xs in by_class.items()}
            good = {c: sum(freq[x] >= GOOD for x in xs) for c, xs in by_class.items()}
            eligible = [c for c in by_class if best[c] >= GOOD] or [c for c in by_class if best[c] >= FALLBACK]
            if not eligible:
                top = max(best.values())
                eligible = [c for c in by_class if best[c] == top]
            chosen = min(eligible, key=lambda c: (good[c], c))
            keep = max(by_class[chosen], key=lambda x: (freq[x], x))
            why = f"best of class {chosen}"
        for x in cands:
            decision[x] = (True, why) if x == keep else (False, f"duplicate of {keep}")
    return pd.DataFrame({"id": ids, "keep": [decision[i][0] for i in ids],
                         "component": [comp_name[find(i)] for i in ids],
                         "reason": [decision[i][1] for i in ids]})
