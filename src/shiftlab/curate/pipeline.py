"""ImageNetV2's whole process on the digits world: votes → near-duplicates → resolution → three variants.

The one step a person does in the real process — reviewing the near-duplicate queue — is played here by an
oracle reviewer that knows the planted pairs (the review app will let a person do it). Everything else is
the same code a dataset builder runs through the CLI.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from shiftlab.curate import dedup as dd
from shiftlab.curate.revisions import Revision, make_revision
from shiftlab.curate.votes import attach_frequencies, import_votes
from shiftlab.data.manifest import Manifest

#: the world's images are 32 px: compare them at 64 px (room for the 35-px SSIM window)
WORLD_SIZE = 64
WORLD_REVIEW_K = 10  # the (oracle) reviewer looks at every neighbour kept, so every candidate ends reviewed
WORLD_QUANTILE = 0.2
#: dssim is left out here only because on a CPU it costs ~100 s for the world; `shiftlab dedup` offers it
METRICS = ("l2", "phash", "embedding")
EMBED_MODEL = "world:cnn-medium-s0"


@dataclass
class WorldTestSets:
    pool: Manifest  # with selection_frequency, n_annotations
    candidates: pd.DataFrame  # the sampler's input table
    thresholds: dict[str, float]
    queue: pd.DataFrame
    recall: pd.DataFrame  # per metric: planted pairs queued, queue rows
    resolution: pd.DataFrame
    revisions: dict[str, Revision] = field(default_factory=dict)
    manifests: dict[str, Manifest] = field(default_factory=dict)


def build_world_testsets(world, *, seed: int = 0, per_class: int = 10, progress: bool = True) -> WorldTestSets:
    from shiftlab.models.zoo import train_zoo

    ws = world.workspace
    votes = import_votes(world.hits_results, world.root / "hits" / "batch.json")
    pool = attach_frequencies(world.manifest("pool"), votes)
    test = attach_frequencies(world.manifest("test"), votes)
    train_zoo(world.manifest("train"), ws, names=[EMBED_MODEL.split(":")[1]], progress=progress)
    refs = {s: world.manifest(s) for s in ("train", "test", "pool")}
    table = dd.find_near_duplicates(pool, refs, list(METRICS), k=10, review_k=WORLD_REVIEW_K, dssim_k=3,
                                    model=EMBED_MODEL, size=WORLD_SIZE, workspace=ws, device="cpu",
                                    progress=progress)
    thr = dd.quantile_thresholds(table, WORLD_QUANTILE, review_k=WORLD_REVIEW_K)
    queue = dd.review_queue(table, thr, review_k=WORLD_REVIEW_K)

    planted = {frozenset((d["id"], d["source_id"])) for d in world.truth()["duplicates"]}
    pairs = queue[["query_id", "reference_id"]].drop_duplicates()
    is_dup = [frozenset(p) in planted for p in zip(pairs.query_id, pairs.reference_id)]
    links = [tuple(p) for p, d in zip(zip(pairs.query_id, pairs.reference_id), is_dup) if d]
    queued = {frozenset(p) for p in zip(queue.query_id, queue.reference_id)}
    source = pool.table.set_index("id")["source_id"]
    same_source = {p for p in planted if len({source.get(x, x) for x in p}) == 1}  # linked without review
    rows = [{"metric": m, "planted pairs queued": len({frozenset(p) for p in zip(g.query_id, g.reference_id)}
                                                      & planted), "queue rows": len(g)}
            for m, g in queue.groupby("metric")]
    rows.append({"metric": "any metric, or the same source id", "planted pairs queued":
                 len((queued & planted) | same_source), "queue rows": len(queue)})
    recall = pd.DataFrame(rows)
    recall["of planted"] = len(planted)
    reviewed = list(zip(pairs.query_id, pairs.reference_id))
    rthr = dd.review_thresholds(table, reviewed)
    above = pd.Series(True, index=rthr.index)
    for metric in rthr.columns:
        above &= rthr[metric] > thr.get(metric, dd.NO_THRESHOLD)
    pt = pool.table
    originals = set(world.manifest("train").ids) | set(world.manifest("test").ids)
    res = dd.resolve_duplicates(pd.DataFrame({"id": pt.id, "class": pt.label, "frequency": pt.selection_frequency,
                                              "source_id": pt.source_id}), links, originals)
    keep = res.set_index("id")["keep"]
    cands = pd.DataFrame({"id": pt.id, "class": pt.label, "frequency": pt.selection_frequency,
                          "n_annotations": pt.n_annotations, "blacklisted": False,
                          "near_duplicate": ~pt.id.map(keep).astype(bool),
                          "reviewed": pt.id.map(above).fillna(False).astype(bool)})
    val = pd.DataFrame({"id": test.table.id, "class": test.table.label, "frequency": test.table.selection_frequency,
                        "n_annotations": test.table.n_annotations})
    out = WorldTestSets(pool, cands, thr, queue, recall, res)
    rows = pd.Series(range(len(pool)), index=pt.id)
    for letter in "abc":
        name = f"world-{letter}-0"
        rev = make_revision(name, cands, seed=seed, validation=val, class_names=pool.vocabulary, per_class=per_class,
                            allow_upward_sampling=True, time_string="world", username="shiftlab",
                            review_targets=thr)
        order = [i for i, _ in rev.doc["image_filenames"]]
        out.revisions[letter] = rev
        out.manifests[letter] = pool.subset(rows.loc[order].to_numpy(), name=name)
    return out
