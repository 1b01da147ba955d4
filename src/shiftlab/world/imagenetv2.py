"""ImageNetV2 on the digits world: votes → near-duplicates → resolution → the three variants.

The one step a person does in the real process — reviewing the near-duplicate queue — is played here by an
oracle reviewer that knows the planted pairs (the review app lets a person do it); everything else is the
library code of ``shiftlab.curate.imagenetv2``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import pandas as pd

from shiftlab.curate.imagenetv2 import DedupResult, dedup_pool, resolve_reviews, revision_pool_manifest
from shiftlab.curate.revisions import Revision, make_revision
from shiftlab.curate.sample import candidate_table, frequency_table
from shiftlab.curate.votes import attach_frequencies, import_votes
from shiftlab.data.manifest import Manifest
from shiftlab.world.zoo import train_zoo

#: the world's images are 32 px: compare them at 64 px (room for the 35-px SSIM window)
WORLD_SIZE = 64
WORLD_REVIEW_K = 10  # the (oracle) reviewer looks at every neighbour kept, so every candidate ends reviewed
#: review thresholds of l2, phash, embedding and dssim: this quantile of the distances to the first
#: review_k neighbours (their scales depend on the data). 2 % keeps the queue near 2 pairs per candidate
#: (1,014 pairs in 1,618 rows for the 513 of the seed-0 world; 845 before dssim joined); 20 % queued some
#: 7,200, to find no planted pair that the aligned metric misses.
WORLD_QUANTILE = 0.02
#: ImageNetV2's three (l2, embedding in fc7's place, dssim: ~7 s of the world's run on 2 CPU cores), the
#: perceptual hash, and aligned for the crop-and-shift copies the others miss
METRICS = ("l2", "phash", "embedding", "aligned", "dssim")
FEATURE_MODEL = "world:cnn-medium-s0"


@dataclass
class WorldTestSets:
    """``build_world_testsets``'s result: the voted pool, the candidates table, the near-duplicate search, the
    planted-pair recall per metric (``planted_recall``), the S1.4 resolution, and per variant letter (a, b, c)
    its revision and manifest.
    """

    pool: Manifest  # with selection_frequency, n_annotations
    candidates: pd.DataFrame  # the sampler's input table
    dedup: DedupResult  # neighbours, queue and thresholds, as ``shiftlab dedup`` writes them
    recall: pd.DataFrame  # per metric: planted pairs found / queued, queue rows and pairs
    resolution: pd.DataFrame
    revisions: dict[str, Revision] = field(default_factory=dict)
    manifests: dict[str, Manifest] = field(default_factory=dict)


def planted_recall(table: pd.DataFrame, queue: pd.DataFrame, thresholds: Mapping[str, float], planted: Iterable,
                   same_source: Iterable = (), *, review_k: int) -> pd.DataFrame:
    """How many of the ``planted`` near-duplicate pairs (id pairs, either order) each metric recovers.

    Per metric of ``table`` and for ``any metric``: ``found`` — planted pairs with a neighbour row among
    the first ``review_k`` within the metric's threshold, whether or not the two share a source id;
    ``queued`` — planted pairs in the review ``queue``. By S1.3 the queue never holds a pair of one source
    id (S1.4 links those without review): ``queueable`` counts the planted pairs not in ``same_source``.
    ``queue rows`` / ``queue pairs``: the queue's size; ``planted``: how many pairs there are."""
    planted = {frozenset(p) for p in planted}
    queueable = planted - {frozenset(p) for p in same_source}
    near = table[(table["rank"] < review_k) & ~table["is_self"]
                 & (table["distance"] <= table["metric"].map(dict(thresholds)).astype(float))]

    def row(name, n, q):
        found = {frozenset(p) for p in zip(n["query_id"], n["reference_id"])} & planted
        pairs = {frozenset(p) for p in zip(q["query_id"], q["reference_id"])}
        return {"metric": name, "found": len(found), "queued": len(pairs & planted), "queue rows": len(q),
                "queue pairs": len(pairs), "planted": len(planted), "queueable": len(queueable)}

    rows = [row(m, near[near["metric"] == m], queue[queue["metric"] == m]) for m in sorted(table["metric"].unique())]
    return pd.DataFrame(rows + [row("any metric", near, queue)])


def build_world_testsets(world, *, seed: int = 0, per_class: int = 10, progress: bool = True) -> WorldTestSets:
    """The world's ImageNetV2: the crowd's votes → selection frequencies; near-duplicates of train, test
    and pool images by ``METRICS`` at 64 px (the k = 10 nearest, all looked at; thresholds: the
    ``WORLD_QUANTILE`` of each data-scaled metric, ``aligned``'s own); the oracle's review of the whole
    queue → S1.4 resolution → variants a, b, c of ``per_class`` images per class (seeded)."""
    ws = world.workspace
    votes = import_votes(world.hits_results, world.root / "hits" / "batch.json")
    pool = attach_frequencies(world.manifest("pool"), votes)
    test = attach_frequencies(world.manifest("test"), votes)
    train_zoo(world.manifest("train"), ws, names=[FEATURE_MODEL.split(":")[1]], progress=progress)
    # keyed by registered name, so the neighbour table and queue name sets the review app can open
    refs = {m.name: m for m in (world.manifest(s) for s in ("train", "test", "pool"))}
    found = dedup_pool(pool, refs, METRICS, k=10, review_k=WORLD_REVIEW_K, quantile=WORLD_QUANTILE,
                       feature_model=FEATURE_MODEL, size=WORLD_SIZE, workspace=ws, device="cpu", progress=progress)
    thr, queue = found.queue_thresholds, found.queue

    # the oracle reviewer decides every queued pair: a duplicate exactly when it was planted
    planted = {frozenset((d["id"], d["source_id"])) for d in world.truth()["duplicates"]}
    pairs = queue[["query_id", "reference_id"]].drop_duplicates()
    reviews = pd.DataFrame({"query": pairs["query_id"], "reference": pairs["reference_id"],
                            "is_duplicate": [frozenset(p) in planted for p in zip(pairs.query_id, pairs.reference_id)],
                            "reviewer": "oracle"})
    _, rthr, res = resolve_reviews(found.table, pool, refs, reviews)
    source = pool.table.set_index("id")["source_id"]
    same_source = [p for p in planted if len({source.get(x, x) for x in p}) == 1]
    recall = planted_recall(found.table, queue, thr, planted, same_source, review_k=WORLD_REVIEW_K)
    cands = candidate_table(pool, resolution=res, review_thresholds=rthr, targets=thr)
    val = frequency_table(test, "the validation set")
    out = WorldTestSets(pool, cands, found, recall, res)
    for letter in "abc":
        rev = make_revision(f"world-{letter}-0", cands, seed=seed, validation=val, class_names=pool.vocabulary,
                            per_class=per_class, allow_upward_sampling=True, time_string="world",
                            username="shiftlab", review_targets=thr)
        out.revisions[letter] = rev
        out.manifests[letter] = revision_pool_manifest(pool, rev)
    return out
