"""Detection (S1.3): every query's k nearest references per metric and reference set (the NeighbourTable)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from shiftlab.curate.dedup.aligned import ALIGN_SIZE, aligned_knn, grey_thumbnails
from shiftlab.curate.dedup.features import embeddings, flat_pixels, phash_bits, scaled_pixels, take_rows
from shiftlab.curate.dedup.ssim import default_batch_size, dssim_pairs
from shiftlab.errors import InputError
from shiftlab.fsutil import atomic_save_npy
from shiftlab.metrics.neighbors import hash_rows, knn
from shiftlab.predict.engine import resolve_device
from shiftlab.predict.executors import current_executor
from shiftlab.progress import bar
from shiftlab.workspace import Workspace

METRICS = ("l2", "embedding", "phash", "aligned", "dssim")
TABLE_COLUMNS = ["query_id", "reference_split", "reference_id", "metric", "rank", "distance", "is_self",
                 "same_source"]

NeighbourTable = pd.DataFrame  # the columns of TABLE_COLUMNS; parameters in ``.attrs``


# --- detection ---------------------------------------------------------------------------------------
def find_near_duplicates(query, references: Mapping[str, object], metrics: Iterable[str] = ("l2", "phash", "dssim"),
                         k: int = 100, *, review_k: int = 30, feature_model: str | None = None, size: int = 256,
                         align_size: int = ALIGN_SIZE, workspace=None, device: str = "auto", dssim_window: int = 35,
                         dssim_k: int | None = None, chunk: int = 4096,
                         reference_metrics: Mapping[str, Iterable[str]] | None = None,
                         cache_dir: str | os.PathLike | None = None, progress: bool = True) -> NeighbourTable:
    """The k nearest references of every query image, per metric and reference set (see the module doc).

    query: a Manifest (the candidates); references: name → Manifest (e.g. train, val, test, and the
    candidates themselves). metrics: any of ``l2, embedding (alias fc7), phash, aligned, dssim``;
    ``embedding`` needs ``feature_model`` (a model spec whose penultimate features are compared, e.g.
    ``world:cnn-medium-s0``). dssim is ranked within the
    shortlist of the other metrics' top ``dssim_k`` pairs (default ``review_k``; all ``k`` of l2 when dssim
    is alone). ``reference_metrics``: name → the metrics to use against that set (default: all of
    ``metrics``), e.g. dssim only against a few sets, as ImageNetV2 did (S1.3); dssim's shortlist comes
    from the other metrics run against the same set.
    ``size``: side of the scaled copy in px (256 in S1.3); ``align_size``: side of the ``aligned``
    metric's grey thumbnails, area-averaged from the scaled copy (2 ≤ align_size ≤ size). Undecodable
    images are left out (``table.attrs["excluded"]`` counts them per set). ``cache_dir`` defaults to
    ``<workspace>/cache/knn``.
    """
    metrics = ["embedding" if m == "fc7" else m for m in metrics]
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise InputError(f"unknown near-duplicate metric(s) {', '.join(unknown)}; use {', '.join(METRICS)}")
    if not metrics:
        raise InputError("give at least one near-duplicate metric")
    if "embedding" in metrics and not feature_model:
        raise InputError("the embedding metric needs a feature model (e.g. --feature-model world:cnn-medium-s0)")
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
    executor = current_executor()  # query chunks of the exact kNN go wherever predictions go (local or Ray)
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
            feats, fv = embeddings(man, feature_model, ws, device=device, progress=progress)
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
                qa, ra = flat_pixels(pix["__query__"]), flat_pixels(pix[ref_name])
            else:
                qa, ra = reps[("__query__", metric)], reps[(ref_name, metric)]
            if metric == "aligned":
                d, i = aligned_knn(take_rows(qa, q_rows), take_rows(ra, r_rows), k, cache_dir=cache_dir)
            else:
                d, i = knn(take_rows(qa, q_rows), take_rows(ra, r_rows), k, chunk=chunk, cache_dir=cache_dir,
                           map_chunks=executor.map)
            pairs[metric] = (d, r_rows[i])
        if "dssim" in per_ref[ref_name]:
            if not pairs:  # dssim alone: shortlist by l2
                qa, ra = flat_pixels(pix["__query__"]), flat_pixels(pix[ref_name])
                d, i = knn(take_rows(qa, q_rows), take_rows(ra, r_rows), k, chunk=chunk, cache_dir=cache_dir,
                           map_chunks=executor.map)
                short = [r_rows[i]]
            else:
                short = [r[:, :dssim_k or review_k] for _, r in pairs.values()]
            pairs["dssim"] = _dssim_neighbours(pix["__query__"], pix[ref_name], q_rows, np.concatenate(short, 1), k,
                                               window=dssim_window, device=device, progress=progress,
                                               cache_dir=cache_dir)
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
    table.attrs.update({"k": k, "review_k": review_k, "size": size,
                        "feature_model": feature_model, "metrics": list(metrics),
                        "align_size": align_size if "aligned" in metrics else None,
                        "reference_metrics": per_ref,
                        "excluded": {n: int(len(m) - len(valid[n])) for n, m in sets.items()}})
    return table


def _dssim_neighbours(qpix, rpix, q_rows, shortlist, k, *, window, device, progress=False, cache_dir=None):
    """Rank each query's shortlisted reference rows by DSSIM: (dist (nq, k'), ref rows (nq, k'), -1 padded).

    With ``cache_dir`` the scores are stored under a hash of the pixels of the rows involved, the pairs and
    the window, so a rerun on the same images (the demo's second run) scores nothing again."""
    dev = resolve_device(device)
    nq = len(q_rows)
    uniq = [np.unique(shortlist[j]) for j in range(nq)]
    qa = np.concatenate([np.full(len(u), q_rows[j]) for j, u in enumerate(uniq)]) if nq else np.zeros(0, int)
    ra = np.concatenate(uniq) if nq else np.zeros(0, int)
    cached = None
    if cache_dir is not None and len(qa):
        qu, ru = np.unique(qa), np.unique(ra)
        key = hashlib.sha256("|".join([hash_rows(qpix, qu), hash_rows(rpix, ru),
                                       hash_rows(qu), hash_rows(ru), hash_rows(qa), hash_rows(ra),
                                       str(window)]).encode()).hexdigest()
        cached = Path(cache_dir) / f"dssim-{key[:32]}.npy"
    if cached is not None and cached.is_file():
        scores = np.load(cached)
    else:
        scores = np.empty(len(qa), np.float64)
        batch = default_batch_size(int(np.prod(qpix.shape[1:])), dev)
        step = max(batch * 16, 1024)  # pairs gathered from the pixel caches at a time
        with bar(f"dssim on {len(qa)} shortlisted pairs", len(qa), disable=not progress) as b:
            for lo in range(0, len(qa), step):
                hi = min(len(qa), lo + step)
                scores[lo:hi] = dssim_pairs(np.asarray(qpix[qa[lo:hi]]), np.asarray(rpix[ra[lo:hi]]),
                                            win_size=window, device=dev, batch_size=batch)
                b.advance(hi - lo)
        if cached is not None:
            cached.parent.mkdir(parents=True, exist_ok=True)
            atomic_save_npy(cached, scores)
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
