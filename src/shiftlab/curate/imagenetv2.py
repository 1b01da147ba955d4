"""ImageNetV2's process (SPECS S1.3–S1.5) as library steps, and the whole of it on the digits world.

- ``dedup_pool``: near-duplicates of a candidate pool — neighbours, review queue and, given review
  decisions, the review thresholds and the S1.4 resolution (what ``shiftlab dedup`` runs).
- ``sample_pool_revision``: one variant's revision sampled from a pool with selection frequencies, and its
  manifest (what ``shiftlab sample`` runs).

The whole process on the embedded digits world is ``shiftlab.world.imagenetv2.build_world_testsets``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd

from shiftlab.curate import dedup as dd
from shiftlab.curate.revisions import Revision, make_revision, new_revision_name
from shiftlab.curate.sample import candidate_table, frequency_table, read_dedup_folder, read_queue_thresholds
from shiftlab.data.manifest import Manifest
from shiftlab.errors import InputError
from shiftlab.fsutil import backup_file, replace_bytes


# --- near-duplicates of a pool (S1.3, S1.4) ----------------------------------------------------------------
@dataclass
class DedupResult:
    """What ``dedup_pool`` found. ``table``: the neighbour table; ``queue``: the review queue; with review
    decisions also ``links`` (the pairs judged duplicates), ``review_thresholds`` (per candidate and
    metric, S1.3) and ``resolution`` (``id, keep, component, reason``, S1.4)."""

    table: pd.DataFrame
    queue: pd.DataFrame
    links: list[tuple[str, str]] | None = None
    review_thresholds: pd.DataFrame | None = None
    resolution: pd.DataFrame | None = None
    #: the queue's distance threshold per metric; S1.3's review targets are the same numbers (ImageNetV2
    #: queued below 1.2e8 / 0.2205 / 1.32e4 and required review thresholds above them)
    queue_thresholds: dict[str, float] | None = None

    def write(self, folder: str | os.PathLike) -> list[Path]:
        """``neighbours.parquet``, ``queue.csv`` and ``queue_thresholds.json``, plus
        ``review_thresholds.parquet`` and ``resolution.parquet`` after a review — what
        ``sample_pool_revision(dedup_dir=folder)`` reads. Each file is written atomically; one that was there
        with other contents is kept as a dated ``.bak`` beside it, and a resolution left by an earlier
        reviewed run is moved aside the same way when this result has none (it would no longer match)."""
        import io

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)

        def parquet(df, index=False) -> bytes:
            buf = io.BytesIO()
            df.to_parquet(buf, index=index)
            return buf.getvalue()

        files = {"neighbours.parquet": parquet(self.table),
                 "queue.csv": self.queue.to_csv(index=False).encode()}
        if self.queue_thresholds is not None:
            files["queue_thresholds.json"] = json.dumps(self.queue_thresholds, indent=1, sort_keys=True,
                                                        default=str).encode()
        if self.resolution is not None:
            files["review_thresholds.parquet"] = parquet(self.review_thresholds, index=True)
            files["resolution.parquet"] = parquet(self.resolution)
        for stale in ("review_thresholds.parquet", "resolution.parquet"):
            if stale not in files and (folder / stale).is_file():
                backup_file(folder / stale)
                (folder / stale).unlink()
        for name, data in files.items():
            replace_bytes(folder / name, data)
        return [folder / name for name in files]


def resolve_reviews(table: pd.DataFrame, query: Manifest, references: Mapping[str, Manifest],
                    reviews: pd.DataFrame, *, review_k: int = 30,
                    window: str = "split") -> tuple[list[tuple[str, str]], pd.DataFrame, pd.DataFrame]:
    """Fold review decisions (``query, reference, is_duplicate[, reviewer]``, as ``read_review_csv`` gives)
    into (duplicate links, review thresholds, resolution). Every reviewed pair counts as reviewed, whatever
    the decision; the original-dataset images are those of every reference set other than ``query``
    itself (by manifest name); candidates carry their selection frequency (NaN without) and source id.
    ``review_k`` / ``window``: the neighbours a reviewer looked at (``review_thresholds``)."""
    links = dd.duplicate_links(reviews)
    thresholds = dd.review_thresholds(table, list(zip(reviews["query"], reviews["reference"])), review_k=review_k,
                                      window=window)
    t = query.table
    cands = pd.DataFrame({"id": t["id"], "class": t["label"],
                          "frequency": t.get("selection_frequency", pd.Series(float("nan"), t.index)),
                          "source_id": t.get("source_id", pd.Series(None, t.index))})
    originals = {i for m in references.values() if m.name != query.name for i in m.ids}
    return links, thresholds, dd.resolve_duplicates(cands, links, originals)


def dedup_pool(query: Manifest, references: Mapping[str, Manifest], metrics: Iterable[str] = ("l2", "dssim", "phash"),
               k: int = 100, *, review_k: int = 30, thresholds: Mapping[str, float] | None = None,
               quantile: float | None = None, reviews: pd.DataFrame | None = None, window: str = "split",
               progress: bool = True, **search) -> DedupResult:
    """Near-duplicates of the candidate pool ``query`` among ``references`` (S1.3), and with ``reviews``
    their resolution (S1.4; ``resolve_reviews``).

    metrics, k, review_k and ``search`` (feature_model, size, align_size, workspace, device, …) go to
    ``find_near_duplicates``. The review queue's thresholds are ``IMAGENETV2_THRESHOLDS``, or with
    ``quantile`` read off the data (``quantile_thresholds``), and ``thresholds`` (metric → distance) override
    either (metric names as in ``IMAGENETV2_THRESHOLDS``). ``window``: "split" counts the first ``review_k``
    neighbours per reference set, "pooled" over all of them as ImageNetV2 did (``in_review_window``).
    Everything is checked before the search starts."""
    if window not in dd.WINDOWS:
        raise InputError(f"review window must be one of {', '.join(dd.WINDOWS)}, not {window!r}")
    if quantile is not None and not 0 < quantile < 1:
        raise InputError(f"quantile {quantile}: give a fraction between 0 and 1, e.g. 0.02")
    unknown = [m for m in (thresholds or {}) if m not in dd.IMAGENETV2_THRESHOLDS]
    if unknown:
        raise InputError(f"threshold for {unknown[0]!r}: metric must be one of {', '.join(dd.IMAGENETV2_THRESHOLDS)}")
    table = dd.find_near_duplicates(query, references, list(metrics), k, review_k=review_k, progress=progress,
                                    **search)
    used = dd.queue_thresholds(table, thresholds, quantile=quantile, review_k=review_k)
    out = DedupResult(table, dd.review_queue(table, used, review_k=review_k, window=window), queue_thresholds=used)
    if reviews is not None:
        out.links, out.review_thresholds, out.resolution = resolve_reviews(table, query, references, reviews,
                                                                           review_k=review_k, window=window)
    return out


# --- sampling a revision from a pool (S1.5) ----------------------------------------------------------------
@dataclass
class PoolRevision:
    """A revision sampled from a pool: the revision (file contents and what the sampler did), the pool's
    manifest of its images in revision order, and the candidates table it was sampled from."""

    revision: Revision
    manifest: Manifest
    candidates: pd.DataFrame

    def write(self, folder: str | os.PathLike) -> Path:
        """The revision file ``<name>.json`` in ``folder`` (made if missing); returns its path."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        return self.revision.write(folder / self.revision.filename)


#: ImageNetV2's three sampling strategies by the names people use, and the variant letter each one makes
STRATEGIES = {"threshold": "a", "matched": "b", "top": "c"}


def variant_of(strategy: str) -> str:
    """The variant letter of a strategy: ``threshold`` → a, ``matched`` → b, ``top`` → c (a letter stays)."""
    if strategy in STRATEGIES.values():
        return strategy
    if strategy not in STRATEGIES:
        raise InputError(f"strategy must be one of {', '.join(STRATEGIES)} (or the variant letter a, b, c), "
                         f"not {strategy!r}")
    return STRATEGIES[strategy]


def revision_pool_manifest(pool: Manifest, revision: Revision, *, dataset: str | None = None,
                           parent: str | None = None) -> Manifest:
    """The pool's rows in the revision's order, named after it, carrying its dataset / variant / revision
    / parent (default: the pool's name) / seed and its sampling parameters."""
    order = [i for i, _ in revision.doc["image_filenames"]]
    rows = pd.Series(range(len(pool)), index=pool.table["id"]).loc[order].to_numpy()
    m = pool.subset(rows, name=revision.name)
    ds, variant, number = revision.name.rsplit("-", 2)
    return replace(m, dataset=dataset or ds, variant=variant, revision=number, parent=parent or pool.name,
                   seed=revision.doc["seed"],
                   parameters={**m.parameters, "sampling": {k: v for k, v in revision.doc.items()
                                                            if k != "image_filenames"}})


def sample_pool_revision(pool: Manifest, variant: str, *, seed: int, dedup_dir: str | os.PathLike | None,
                         validation: Manifest | None = None, parent: str | os.PathLike | None = None,
                         per_class: int = 10, allow_upward_sampling: bool = False,
                         class_thresholds: Mapping[int | str, float] | None = None, dataset: str | None = None,
                         review_targets: Mapping[str, float] | None = None, time_string: str | None = None,
                         username: str | None = None) -> PoolRevision:
    """Sample variant ``a`` | ``b`` | ``c`` (S1.5) from a pool carrying selection frequencies.

    dedup_dir: a folder written by ``DedupResult.write`` after a review (its resolution excludes the
    near-duplicates; its review thresholds, compared with ``review_targets`` — default: the thresholds the
    folder's queue was built with (``queue_thresholds.json``), else S1.3's, see
    ``shiftlab.curate.sample.review_targets`` — decide who counts as reviewed; the file records
    ``review_targets``, S1.3's when not given); ``None`` samples without
    near-duplicate review, which is not ImageNetV2's process: say so when you publish. validation: a
    manifest with selection frequencies (needed by ``b``). parent: the previous revision's file; its
    still-eligible images carry over and the new revision is its successor. dataset: the name's dataset
    part (default: the pool's dataset, else its name). The rest goes to ``make_revision``.
    """
    frequency_table(pool, "the pool")  # a pool without votes: say that before anything else
    if dedup_dir is None:
        cands = candidate_table(pool, dedup=False)
    else:
        resolution, thresholds = read_dedup_folder(dedup_dir)
        if review_targets is None:
            review_targets = read_queue_thresholds(dedup_dir)
        cands = candidate_table(pool, resolution=resolution, review_thresholds=thresholds, targets=review_targets)
    val = frequency_table(validation, "the validation set") if validation is not None else None
    if variant == "b" and val is None:
        raise InputError("the matched strategy needs --reference-val with selection frequencies")
    name_ds = dataset or pool.dataset or pool.name
    name = new_revision_name(name_ds, variant, parent)
    rev = make_revision(name, cands, seed=seed, validation=val, parent=parent, class_names=pool.vocabulary,
                        per_class=per_class, class_thresholds=class_thresholds,
                        allow_upward_sampling=allow_upward_sampling, review_targets=review_targets,
                        time_string=time_string, username=username)
    parent_name = Path(parent).stem if parent is not None else None
    return PoolRevision(rev, revision_pool_manifest(pool, rev, dataset=name_ds, parent=parent_name), cands)
