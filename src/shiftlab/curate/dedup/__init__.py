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
  - ``dssim``: (1 − SSIM)/2, SSIM as scikit-image's with a 35-px window (``shiftlab.curate.dedup.ssim``). It is
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

Modules: ``features`` (the scaled copy, hashes, embeddings), ``aligned`` (the aligned metric), ``search``
(``find_near_duplicates``), ``thresholds`` (review thresholds and the queue), ``resolution`` (review CSVs,
S1.4), ``ssim`` (SSIM / DSSIM on the CPU or a GPU). The exact kNN itself is ``shiftlab.metrics.neighbors.knn``.
"""

from shiftlab.curate.dedup.aligned import (
    ALIGN_MIN_CROP,
    ALIGN_SHIFT,
    ALIGN_SIZE,
    align_views,
    aligned_knn,
    grey_thumbnails,
    view_vectors,
)
from shiftlab.curate.dedup.features import embeddings, phash_bits, scaled_pixels, scaled_recipe
from shiftlab.curate.dedup.resolution import REVIEW_COLUMNS, duplicate_links, read_review_csv, resolve_duplicates
from shiftlab.curate.dedup.search import METRICS, TABLE_COLUMNS, NeighbourTable, find_near_duplicates
from shiftlab.curate.dedup.ssim import dssim_pairs, ssim_pairs
from shiftlab.curate.dedup.thresholds import (
    IMAGENETV2_THRESHOLDS,
    NO_THRESHOLD,
    QUEUE_COLUMNS,
    SCALE_FREE,
    WINDOWS,
    in_review_window,
    parse_thresholds,
    quantile_thresholds,
    queue_thresholds,
    review_queue,
    review_thresholds,
)

__all__ = [
    "ALIGN_MIN_CROP",
    "ALIGN_SHIFT",
    "ALIGN_SIZE",
    "IMAGENETV2_THRESHOLDS",
    "METRICS",
    "NO_THRESHOLD",
    "QUEUE_COLUMNS",
    "REVIEW_COLUMNS",
    "SCALE_FREE",
    "TABLE_COLUMNS", "WINDOWS",
    "NeighbourTable",
    "align_views",
    "aligned_knn",
    "dssim_pairs",
    "duplicate_links",
    "embeddings",
    "find_near_duplicates",
    "grey_thumbnails", "in_review_window",
    "parse_thresholds",
    "phash_bits",
    "quantile_thresholds",
    "queue_thresholds",
    "read_review_csv",
    "resolve_duplicates",
    "review_queue",
    "review_thresholds",
    "scaled_pixels",
    "scaled_recipe",
    "ssim_pairs",
    "view_vectors",
]
