"""ImageNetV2's process (SPECS S1): ``candidates import``, ``hits make`` / ``import``, ``dedup`` and ``sample``."""

from __future__ import annotations

from pathlib import Path

import typer

from shiftlab.cli.common import (
    check_out_folder,
    executor_option,
    executor_scope,
    out,
    pick,
    ray_address_option,
    split_names,
    table,
    vocabulary,
    ws,
)
from shiftlab.errors import InputError


def register(app: typer.Typer) -> None:
    candidates_app = typer.Typer(help="Candidate pools for a new test set (ImageNetV2 S1.1).", no_args_is_help=True)
    hits_app = typer.Typer(help="Crowd labelling: HIT batches and their results (ImageNetV2 S1.2).",
                           no_args_is_help=True)
    app.add_typer(candidates_app, name="candidates")
    app.add_typer(hits_app, name="hits")
    candidates_app.command("import")(candidates_import)
    hits_app.command("make")(hits_make)
    hits_app.command("import")(hits_import)
    app.command()(dedup)
    app.command()(sample)


def candidates_import(
    source: Path = typer.Argument(..., help="A folder <class>/<files> or a CSV with path,class[,source_id,…]."),
    name: str = typer.Option(..., help="Name of the pool manifest, e.g. mypool-candidates."),
    vocab: str = typer.Option("imagenet-1k", "--vocabulary", help="imagenet-1k, digits, or a JSON list of class "
                                                                  "names."),
    out_dir: Path | None = typer.Option(None, "--out", help="Where the scaled copies go "
                                                            "[default: <workspace>/candidates/<name>]."),
):
    """Turn candidate images into a pool manifest with stable ids, 256×256 scaled copies and a blacklist."""
    from shiftlab.curate.candidates import import_candidates
    from shiftlab.registry import check_name, register_dataset

    check_name(name)
    m, blacklist = import_candidates(source, vocabulary=vocabulary(vocab), name=name,
                                     out_dir=out_dir or ws().root / "candidates" / name)
    p = register_dataset(m, name, ws())
    out.print(f"registered {name}: {len(m)} candidates in {m.table['label'].nunique()} classes → {p}; "
              f"{len(blacklist)} blacklisted (unreadable) → {Path(m.root) / 'blacklist.json'}")


def hits_make(
    pool: str = typer.Option(..., help="Pool manifest (registered name or path): candidates by label."),
    reference_val: str = typer.Option(..., "--reference-val", help="Validation set: the HITs' controls."),
    seed: int = typer.Option(..., help="Seed of the control draws and the shuffles (recorded)."),
    similar: Path | None = typer.Option(None, help="JSON class → most similar classes (negative controls) "
                                                   "[default for the digits: the world's]."),
    annotate_val: bool = typer.Option(False, "--annotate-val", help="Also annotate the validation images as "
                                                                    "candidates (MatchedFrequency needs them)."),
    out_dir: Path | None = typer.Option(None, "--out", help="[default: <workspace>/hits/<pool>]"),
):
    """Write HIT batches of 48 (42 candidates + 3 positive + 3 negative controls) as JSON and a crowd CSV."""
    from shiftlab.curate.annotate import make_hit_batch

    made = make_hit_batch(pool, reference_val, seed=seed, similar=similar, annotate_validation=annotate_val,
                          out_dir=out_dir, workspace=ws())
    out.print(f"{len(made.hits)} HITs for {made.n_classes} classes → {made.batch} and {made.input_csv} "
              "(batch input CSV)")


def hits_import(
    results: Path = typer.Argument(..., help="Batch results CSV (one row per assignment)."),
    batch: Path = typer.Option(..., help="batch.json written by 'hits make' (opaque URL → image)."),
    pool: str | None = typer.Option(None, help="Pool to annotate: adds selection_frequency and n_annotations "
                                               "and registers it again."),
    min_worker_accuracy: float | None = typer.Option(None, help="Drop workers below this control accuracy."),
    out_dir: Path | None = typer.Option(None, "--out", help="[default: the batch's folder]"),
    replace: bool = typer.Option(False, "--replace", help="Replace the votes already imported into the folder "
                                                          "instead of merging (old files kept as dated .bak)."),
):
    """Selection frequency and valid annotations per (image, class), and workers' control accuracy.

    Votes imported before into the same folder are kept: this file's assignments are merged in by AssignmentId."""
    from shiftlab.curate.votes import import_hits

    if out_dir is not None:
        check_out_folder(out_dir, "--out")
    r = import_hits(results, batch, pool=pool, min_worker_accuracy=min_worker_accuracy, out_dir=out_dir,
                    workspace=ws(), replace=replace)
    if r.n_earlier or r.n_updated:
        out.print(f"merged with {r.n_earlier + r.n_updated} assignment(s) imported before into "
                  f"{r.written[0].parent} ({r.n_updated} replaced by this file's rows of the same AssignmentId)")
    s = r.votes.summary()
    out.print(f"{s['assignments']} assignments ({s['rejected_assignments']} rejected, {s['dropped_workers']} "
              f"workers dropped) → {s['candidate_pairs']} candidate (image, class) pairs, ≥ "
              f"{s['min_valid_per_candidate']} valid annotations each, mean frequency "
              f"{s['mean_candidate_frequency']:.3f}; wrote {r.written[0]} and {r.written[1]}")
    if r.pool is not None:
        out.print(f"{r.pool.name} now carries selection_frequency and n_annotations")


def dedup(
    query: str = typer.Option(..., help="The candidate pool (registered name or path)."),
    reference: str = typer.Option(..., help="Comma-separated sets to search (e.g. world-train,world-test,world-pool)."),
    metrics: str = typer.Option("l2,dssim,phash", help="Any of l2, dssim, embedding (alias fc7), phash, "
                                                            "aligned (crop/shift-tolerant l2)."),
    k: int = typer.Option(100, "-k", min=1, help="Neighbours kept per query, reference set and metric."),
    review_k: int = typer.Option(30, "--review-k", min=1, help="How deep a reviewer looks (ImageNetV2: 30)."),
    feature_model: str | None = typer.Option(None, "--feature-model", help="Model whose penultimate features "
                                                                           "give the embedding metric."),
    embed_model: str | None = typer.Option(None, "--embed-model", hidden=True),  # the old spelling
    size: int = typer.Option(256, help="Side of the scaled copies compared, px."),
    threshold: list[str] = typer.Option([], help="metric=value, overriding a review threshold (repeatable)."),
    quantile: float | None = typer.Option(None, help="Read the review thresholds off the data: this quantile "
                                                     "of each metric's distances to the first review-k "
                                                     "neighbours (e.g. 0.02; aligned keeps its own). For data "
                                                     "unlike ImageNet's photos or sizes other than 256 px."),
    reviews: Path | None = typer.Option(None, help="Review decisions CSV query,reference,is_duplicate,reviewer: "
                                                   "adds review thresholds and the S1.4 resolution."),
    window: str = typer.Option("split", help="How the first --review-k neighbours are counted: per reference set "
                                             "(split) or over all sets together as ImageNetV2 did (pooled)."),
    device: str = typer.Option("auto", help="auto | cpu | cuda[:N] (SSIM and embeddings)."),
    out_dir: Path | None = typer.Option(None, "--out", help="[default: <workspace>/dedup/<query>]"),
    force: bool = typer.Option(False, "--force", help="Without --out: replace the result already in the default "
                                                      "folder (its files are kept as dated .bak backups)."),
    executor: str = executor_option(),
    ray_address: str | None = ray_address_option(),
):
    """Near-duplicates of a candidate pool (ImageNetV2 S1.3/S1.4): neighbours, review queue, resolution."""
    from shiftlab.curate.dedup import parse_thresholds, read_review_csv
    from shiftlab.curate.imagenetv2 import dedup_pool
    from shiftlab.data.layouts import read_dataset

    thresholds = parse_thresholds(threshold)
    model = pick(feature_model, embed_model, "--feature-model", "--embed-model")
    review_table = read_review_csv(reviews) if reviews else None
    q = read_dataset(query, workspace=ws())
    folder = out_dir or ws().root / "dedup" / q.name
    check_out_folder(folder, "--out")
    if out_dir is None and not force and any((folder / f).exists() for f in ("neighbours.parquet", "queue.csv")):
        # checked before the search: the default folder may hold a reviewed result (a demo's, a colleague's)
        raise InputError(f"{folder} already holds a dedup result; give --out DIR for a new one, or --force to "
                         "replace it (the old files are kept as dated .bak backups)")
    refs = {name: read_dataset(name, workspace=ws()) for name in split_names(reference)}
    with executor_scope(executor, ray_address):
        r = dedup_pool(q, refs, split_names(metrics), k, review_k=review_k, thresholds=thresholds or None,
                       quantile=quantile, reviews=review_table, window=window, feature_model=model, size=size,
                       workspace=ws(), device=device)
    written = r.write(folder)
    t = table(f"near-duplicate review queue of {q.name} ({len(q)} candidates)",
              ["metric", "threshold", "queue rows", "candidates queued"],
              right=("threshold", "queue rows", "candidates queued"))
    for metric, thr in sorted(r.queue_thresholds.items()):
        g = r.queue[r.queue["metric"] == metric]
        t.add_row(metric, f"{thr:.4g}", f"{len(g):,}", f"{g.query_id.nunique():,}")
    out.print(t)
    if r.resolution is not None:
        out.print(f"{len(r.links)} reviewed duplicate links: {int((~r.resolution.keep).sum())} of "
                  f"{len(r.resolution)} candidates excluded as near-duplicates")
    out.print("wrote " + ", ".join(str(w) for w in written))


def sample(
    strategy: str = typer.Option(..., help="threshold (a) | matched (b) | top (c); the variant letter works too."),
    pool: str = typer.Option(..., help="Pool manifest carrying selection frequencies ('hits import --pool')."),
    reference_val: str | None = typer.Option(None, "--reference-val", help="Validation set with frequencies "
                                                                         "(needed by matched)."),
    per_class: int = typer.Option(10, "--per-class", min=1),
    seed: int = typer.Option(..., help="Seed of the sampling and the final shuffle (recorded)."),
    dedup_dir: Path | None = typer.Option(None, "--dedup", help="Folder of 'shiftlab dedup --reviews' "
                                                                "(resolution and review thresholds)."),
    no_dedup: bool = typer.Option(False, "--no-dedup", help="Sample without near-duplicate review (not "
                                                            "ImageNetV2's process; say so when you publish)."),
    parent: Path | None = typer.Option(None, "--from", help="Parent revision JSON: its eligible images carry over."),
    allow_upward: bool = typer.Option(False, "--allow-upward", help="matched: fill short bins from higher ones."),
    thresholds: Path | None = typer.Option(None, help="threshold: JSON class → frequency threshold overrides."),
    dataset: str | None = typer.Option(None, help="Dataset part of the name [default: the pool's dataset]."),
    time_string: str | None = typer.Option(None, "--time-string", help="Recorded time [default: now, UTC]; fix "
                                                                       "it (and --username) for byte-identical files."),
    username: str | None = typer.Option(None, help="Recorded user [default: the current user]."),
    out_dir: Path | None = typer.Option(None, "--out", help="[default: <workspace>/revisions]"),
):
    """Sample a test-set revision from the pool (ImageNetV2 S1.5) and register its manifest."""
    from shiftlab.curate.imagenetv2 import sample_pool_revision, variant_of
    from shiftlab.curate.revisions import read_class_thresholds
    from shiftlab.data.layouts import read_dataset
    from shiftlab.registry import register_dataset

    variant = variant_of(strategy)
    if (dedup_dir is None) == (not no_dedup):
        raise InputError("give --dedup DIR (from 'shiftlab dedup --reviews') or, knowingly, --no-dedup")
    p = read_dataset(pool, workspace=ws())
    s = sample_pool_revision(p, variant, seed=seed, dedup_dir=None if no_dedup else dedup_dir,
                             validation=read_dataset(reference_val, workspace=ws()) if reference_val else None,
                             parent=parent, per_class=per_class, allow_upward_sampling=allow_upward,
                             class_thresholds=read_class_thresholds(thresholds) if thresholds else None,
                             dataset=dataset, time_string=time_string, username=username)
    rev, cands = s.revision, s.candidates
    path = s.write(out_dir or ws().root / "revisions")
    register_dataset(s.manifest, rev.name, ws())
    res = rev.result
    validity = "valid" if rev.is_valid else f"NOT valid: {len(res.short_classes)} short classes"
    out.print(f"{rev.name}: {len(s.manifest)} images in {len(res.classes)} classes ({validity}); "
              f"{sum(len(v) for v in res.carried_over.values())} carried over from the parent; "
              f"{int(cands.near_duplicate.sum())} near-duplicates and {int((~cands.reviewed).sum())} unreviewed "
              f"candidates were not eligible; wrote {path} and registered dataset {rev.name}")
