"""Review thresholds and the review queue of S1.3: which neighbours a person looks at.

One home for ImageNetV2's thresholds (``IMAGENETV2_THRESHOLDS``); ``quantile_thresholds`` reads them off the
data for sets unlike 256-px photos; ``review_thresholds`` derives them from reviewed pairs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd

from shiftlab.curate.dedup.search import NeighbourTable
from shiftlab.errors import InputError

#: ImageNetV2's review thresholds for 256-px natural photos. ``phash`` is ours (ImageNetV2 had none):
#: ≤ 10 of 64 bits differ — re-encodings and small edits land at 0–6, unrelated photos near 32.
#: ``aligned`` is ours too: 0.02 ⇔ normalised cross-correlation ≥ 0.99 at the best view. The distance is
#: scale-free, so one number serves any image size and set (on three digits worlds the planted re-encoded,
#: shifted, brightened and cropped copies land at ≤ 0.013, the closest distinct pair at ≥ 0.022).
IMAGENETV2_THRESHOLDS: dict[str, float] = {"l2": 1.2e8, "dssim": 0.2205, "embedding": 1.32e4, "fc7": 1.32e4,
                                           "phash": 10.0, "aligned": 0.02}
#: S1.3's targets: a candidate counts as reviewed when each metric's review threshold exceeds its target
#: (ImageNetV2's three metrics; ``review_targets`` in ``curate.sample`` falls back to the thresholds above)
DEFAULT_REVIEW_TARGETS: dict[str, float] = {m: IMAGENETV2_THRESHOLDS[m] for m in ("l2", "dssim", "fc7")}
NO_THRESHOLD = 1e100
QUEUE_COLUMNS = ["query_id", "reference_id", "reference_split", "metric", "distance", "rank"]


# --- review ------------------------------------------------------------------------------------------
#: how the first ``review_k`` neighbours are counted: per reference split (ours: each set searched shows its
#: own first review_k) or "pooled" over all splits, ImageNetV2's one list per candidate and metric
WINDOWS = ("split", "pooled")


def in_review_window(table: NeighbourTable, review_k: int = 30, window: str = "split") -> np.ndarray:
    """Bool (len(table),): the rows among each query's first ``review_k`` neighbours per metric — counted per
    reference split (``window="split"``, the table's ``rank``) or over all splits together (``"pooled"``, by
    ascending distance, ties by split then rank), as ImageNetV2 pooled its reference sets."""
    if window not in WINDOWS:
        raise InputError(f"review window must be one of {', '.join(WINDOWS)}, not {window!r}")
    if window == "split":
        return (table["rank"] < review_k).to_numpy()
    order = table.sort_values(["query_id", "metric", "distance", "reference_split", "rank"], kind="stable")
    pooled = order.groupby(["query_id", "metric"], sort=False).cumcount()
    return (pooled.reindex(table.index) < review_k).to_numpy()


def review_queue(table: NeighbourTable, thresholds: Mapping[str, float] | None = None, *,
                 review_k: int = 30, window: str = "split") -> pd.DataFrame:
    """The pairs to show a reviewer (S1.3): neighbours among the first ``review_k`` (``in_review_window``)
    that are not the image itself, not of the same source, and within the metric's threshold (≤).

    thresholds: metric → distance, over ``IMAGENETV2_THRESHOLDS`` (``queue_thresholds``). Returns
    ``QUEUE_COLUMNS`` sorted by metric, query_id, rank; a (candidate, metric) is queued when it has at least
    one row.
    """
    t = queue_thresholds(table, thresholds, review_k=review_k)
    thr = table["metric"].map(t).astype(float).fillna(-np.inf)
    q = table[in_review_window(table, review_k, window) & ~table["is_self"] & ~table["same_source"]
              & (table["distance"] <= thr)]
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
    present = set(table["metric"].unique())
    return {m: t for m, t in chosen.items() if m in present}


#: metrics whose threshold means the same on any data and at any size (``aligned``: a correlation), which
#: ``quantile_thresholds`` therefore leaves at their own value
SCALE_FREE = ("aligned",)


def quantile_thresholds(table: pd.DataFrame, quantile: float = 0.2, *, review_k: int = 30) -> dict[str, float]:
    """Review thresholds read off the data: per metric, the ``quantile`` of the distances to the first
    ``review_k`` neighbours that are neither the image itself nor of the same source; ``SCALE_FREE``
    metrics keep their own threshold.

    For sets unlike ImageNetV2's photos (e.g. the digits world, whose images resemble one another far more)
    or compared at another size than 256 px, where the published thresholds mean nothing."""
    if not 0 < quantile < 1:
        raise InputError(f"threshold quantile {quantile} must lie between 0 and 1 (e.g. 0.02)")
    eligible = table[~table["is_self"] & ~table["same_source"]]
    out = {}
    for m, g in eligible.groupby("metric"):
        looked_at = g[g["rank"] < review_k]
        # a metric whose first review_k neighbours are all the image itself or its own source: the
        # quantile of the deeper ones, rather than ImageNetV2's 256-px default through the merge
        out[str(m)] = (IMAGENETV2_THRESHOLDS[m] if m in SCALE_FREE
                       else float(np.quantile((looked_at if len(looked_at) else g)["distance"], quantile)))
    return out


def _pair_set(pairs) -> set[frozenset]:
    return {frozenset((str(a), str(b))) for a, b in pairs}


def review_thresholds(table: NeighbourTable, reviewed_pairs: Iterable[tuple[str, str]] = (),
                      blacklisted: Iterable[str] = (), *, review_k: int = 30, window: str = "split") -> pd.DataFrame:
    """Each query's review threshold per metric (S1.3), as ImageNetV2's ``compute_review_thresholds``: among
    its first ``review_k`` neighbours — the window the queue shows (``in_review_window``) — the distance of
    the first that is not itself, not in a reviewed pair (either order), not of the same source and not
    blacklisted; 1e100 (``NO_THRESHOLD``) when all of them are; 0.0 (not reviewed) for a metric with no
    neighbour row at all. Returns a DataFrame indexed by query_id, one column per metric."""
    reviewed = _pair_set(reviewed_pairs)
    black = {str(b) for b in blacklisted}
    looked_at = table[in_review_window(table, review_k, window)]
    t = looked_at[~looked_at["is_self"] & ~looked_at["same_source"] & ~looked_at["reference_id"].isin(black)]
    if reviewed and len(t):
        # a reviewed pair counts in either order: look both orders up at once (a Python loop over the window's
        # rows took a third of a second on the demo's pool)
        both = [(a, b) for fs in reviewed for a in fs for b in fs if a != b or len(fs) == 1]
        done = pd.MultiIndex.from_arrays([t["query_id"].astype(str), t["reference_id"].astype(str)]).isin(both)
        t = t[~done]
    first = t.groupby(["query_id", "metric"])["distance"].min().unstack("metric")
    queries = pd.Index(sorted(table["query_id"].unique()), name="query_id")
    metrics = sorted(table["metric"].unique())
    has_rows = looked_at.groupby(["query_id", "metric"]).size().unstack("metric").reindex(
        index=queries, columns=metrics).notna()
    out = first.reindex(index=queries, columns=metrics).fillna(NO_THRESHOLD)
    return out.where(has_rows, 0.0)


def parse_thresholds(items: Iterable[str]) -> dict[str, float]:
    """Review-threshold overrides from ``metric=value`` strings (the CLI's repeatable ``--threshold``).

    Metrics are those of ``IMAGENETV2_THRESHOLDS`` (``fc7`` names embedding's); a malformed item is an
    InputError that says how to write it."""
    out: dict[str, float] = {}
    for t in items:
        name, sep, value = t.partition("=")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            raise InputError(f"threshold {t!r}: use metric=value, e.g. l2=1.2e8") from None
        if not sep or name.strip() not in IMAGENETV2_THRESHOLDS:
            raise InputError(f"threshold {t!r}: metric must be one of {', '.join(IMAGENETV2_THRESHOLDS)}")
    return out
