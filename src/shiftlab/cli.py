"""The ``shiftlab`` command: one Typer app; every sub-command is a thin wrapper over a library function.

Errors the user can fix are one line on stderr and exit status 2 (``--debug`` shows the traceback).
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from shiftlab.errors import InputError, ShiftlabError

try:  # recent typer releases vendor click; older ones use the click package
    from typer._click import exceptions as _cx
except ImportError:  # pragma: no cover
    from click import exceptions as _cx
from shiftlab.progress import set_quiet

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Build, audit and evaluate test sets for image classifiers.")
datasets_app = typer.Typer(help="Datasets registered in the workspace.", invoke_without_command=True)
models_app = typer.Typer(help="Model spec schemes and registered model names.", invoke_without_command=True)
world_app = typer.Typer(help="The embedded digits world: the default data and ground truth.", no_args_is_help=True)
app.add_typer(datasets_app, name="datasets")
app.add_typer(world_app, name="world")
candidates_app = typer.Typer(help="Candidate pools for a new test set (ImageNetV2 S1.1).", no_args_is_help=True)
hits_app = typer.Typer(help="Crowd labelling: HIT batches and their results (ImageNetV2 S1.2).", no_args_is_help=True)
app.add_typer(candidates_app, name="candidates")
app.add_typer(hits_app, name="hits")
zoo_app = typer.Typer(help="The embedded model zoo of the digits world (specs world:<name>).", no_args_is_help=True)
app.add_typer(zoo_app, name="zoo")
app.add_typer(models_app, name="models")

# piped or logged output gets wide lines instead of rich's default 80 columns
out = Console(width=None if sys.stdout.isatty() else 200)
_state: dict = {"workspace": None, "debug": False}


@app.callback()
def _global(
    workspace: Path | None = typer.Option(None, "--workspace", "-w", envvar="SHIFTLAB_HOME",
                                             help="Workspace folder [default: ./shiftlab-workspace]."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks."),
):
    _state.update(workspace=workspace, debug=debug)
    set_quiet(quiet)


def _ws():
    from shiftlab.workspace import Workspace

    return Workspace.resolve(_state["workspace"])


def _floats(s: str | None, what: str) -> tuple[float, ...] | None:
    if s is None:
        return None
    try:
        return tuple(float(x) for x in s.split(","))
    except ValueError:
        raise InputError(f"{what} must be comma-separated numbers, e.g. 0.485,0.456,0.406") from None


def _table(title: str, columns: list[str], right: tuple[str, ...] = ()) -> Table:
    """A table whose cells wrap rather than being cut with '…' (output is often piped or logged)."""
    t = Table(title=title)
    for c in columns:
        t.add_column(c, justify="right" if c in right else "left", overflow="fold")
    return t


def _pct(x: float) -> str:
    return "—" if x != x else f"{100 * x:.2f}"


@app.command("eval")
def eval_cmd(
    dataset: str = typer.Option(..., "--dataset", "-d", help="Registered dataset name or a path."),
    models: str = typer.Option(..., "--models", "-m", help="Comma-separated model specs or names."),
    layout: str | None = typer.Option(None, help="imagefolder | imagenetv2 | revision | csv | manifest."),
    root: Path | None = typer.Option(None, help="Image root for a revision JSON or CSV."),
    vocabulary: str | None = typer.Option(None, help="Class names of folders/CSV labels: imagenet-1k, digits, "
                                                     "or a JSON list of names [default: detected]."),
    out_file: Path | None = typer.Option(None, "--out", help="Write results as CSV (and .parquet beside)."),
    device: str = typer.Option("auto", help="auto | cpu | cuda[:N]."),
    batch_size: int = typer.Option(64, "--batch-size", min=1),
    workers: int | None = typer.Option(None, help="Decoding threads [default: min(8, cores)]."),
    recipe: str | None = typer.Option(None, help="Named recipe (imagenet, inception) for every model."),
    resize: int | None = typer.Option(None, help="Override: shorter side before the crop."),
    crop: int | None = typer.Option(None, help="Override: centre-crop size."),
    interpolation: str | None = typer.Option(None, help="Override: bilinear, bicubic, …"),
    mean: str | None = typer.Option(None, help="Override: e.g. 0.485,0.456,0.406."),
    std: str | None = typer.Option(None, help="Override: e.g. 0.229,0.224,0.225."),
    labels: list[str] | None = typer.Option(None, "--labels", help="Extra labels, matched by file name: "
                                            "real:real.json (ReaL), tfds:FILE (TFDS imagenet2012_multilabel "
                                            "JSON/JSONL/CSV), imagenet-m:FILE (the ImageNet-M list). Repeatable."),
    allow_missing_classes: bool = typer.Option(False, "--allow-missing-classes", help="Multi-label accuracy: "
                                               "average over the classes that have images (reports how many)."),
):
    """Top-1 / top-5 accuracy (95% Clopper–Pearson intervals) of models on a test set."""
    from shiftlab.evaluate import evaluate
    from shiftlab.models.recipes import get_recipe

    overrides = {"resize": resize, "crop": crop, "interpolation": interpolation,
                 "mean": _floats(mean, "--mean"), "std": _floats(std, "--std")}
    if recipe is not None:
        base = get_recipe(recipe).to_json()
        overrides = {**{k: base[k] for k in ("resize", "crop", "interpolation", "mean", "std", "mode", "square")},
                     **{k: v for k, v in overrides.items() if v is not None}}
    specs = _specs(models)
    res = evaluate(dataset, specs, workspace=_ws(), layout=layout, root=str(root) if root else None,
                   vocabulary=_vocab(vocabulary), device=device, batch_size=batch_size,
                   recipe_overrides=overrides, workers=workers)
    cols = ["model", "images", "bad images", "top-1 % [95% CI]", "top-5 %"]
    t = _table(f"{res.manifest.name}: {len(res.manifest)} images, {len(res.manifest.vocabulary)} classes",
               cols, right=tuple(cols[1:]))
    for r in res.table.itertuples():
        t.add_row(r.model, str(r.n_images), str(r.n_bad),
                  f"{_pct(r.top1)} [{_pct(r.top1_low)}, {_pct(r.top1_high)}]", _pct(r.top5))
    out.print(t)
    bad = res.bad_images()
    if len(bad):
        counts = bad["reason"].str.replace(r":.*", "", regex=True).value_counts()
        out.print(f"{len(bad)} image(s) could not be decoded and were excluded: "
                  + ", ".join(f"{n} {r}" for r, n in counts.items()))
    if out_file is not None:
        csv, pq = res.save(out_file)
        out.print(f"wrote {csv} and {pq}")
    if labels:
        _label_metrics(res, labels, allow_missing_classes, out_file)


@datasets_app.callback()
def datasets_list(ctx: typer.Context):
    """List registered datasets (``datasets add`` registers one)."""
    if ctx.invoked_subcommand is not None:
        return
    from shiftlab.data.manifest import Manifest
    from shiftlab.registry import dataset_path, list_datasets

    names = list_datasets(_ws())
    if not names:
        out.print(f"no datasets registered in {_ws().root}; add one with 'shiftlab datasets add NAME PATH'")
        return
    t = _table(f"datasets in {_ws().root}", ["name", "images", "classes", "vocabulary", "layout", "root", "hash"])
    for n in names:
        m = Manifest.load(dataset_path(n, _ws()))
        t.add_row(n, str(len(m)), str(m.table["label"].nunique()), m.vocabulary.name,
                  str(m.parameters.get("layout", "")), m.root or "(labels only)", m.content_hash[:12])
    out.print(t)


@datasets_app.command("add")
def datasets_add(
    name: str = typer.Argument(..., help="Name to register under."),
    path: Path = typer.Argument(..., help="Folder, revision JSON, CSV or manifest."),
    layout: str | None = typer.Option(None, help="imagefolder | imagenetv2 | revision | csv | manifest."),
    root: Path | None = typer.Option(None, help="Image root for a revision JSON or CSV."),
    vocabulary: str | None = typer.Option(None, help="imagenet-1k, digits, or a JSON list of class names."),
):
    """Read a dataset into a manifest and register it under NAME."""
    from shiftlab.data.layouts import read_dataset
    from shiftlab.registry import check_name, register_dataset

    check_name(name)
    m = read_dataset(str(path), layout=layout or _layout_for_path(path), workspace=_ws(),
                     root=str(root) if root else None, vocabulary=_vocab(vocabulary))
    p = register_dataset(m, name, _ws())
    out.print(f"registered {name}: {len(m)} images, {m.table['label'].nunique()} classes "
              f"({m.vocabulary.name}) → {p}")


def _vocab(name: str | None):
    from shiftlab.data.classes import load_vocabulary

    return load_vocabulary(name) if name else None


def _layout_for_path(path: Path) -> str | None:
    from shiftlab.data.layouts import detect_layout

    return detect_layout(path) if path.exists() else None


@models_app.callback()
def models_list(ctx: typer.Context):
    """List model spec schemes (with whether they work here) and registered names."""
    if ctx.invoked_subcommand is not None:
        return
    from shiftlab.models.specs import SCHEMES
    from shiftlab.registry import model_aliases

    t = _table("model specs", ["scheme", "example", "available here", "what"])
    for s in SCHEMES.values():
        missing = s.missing()
        t.add_row(f"{s.name}:", s.example, "yes" if not missing else f"no: {s.install}", s.doc)
    out.print(t)
    aliases = model_aliases(_ws())
    if aliases:
        a = _table(f"registered names in {_ws().root}", ["name", "spec"])
        for k, v in sorted(aliases.items()):
            a.add_row(k, v)
        out.print(a)


@models_app.command("add")
def models_add(name: str = typer.Argument(...), spec: str = typer.Argument(...)):
    """Register NAME as a short name for a model SPEC."""
    from shiftlab.models.specs import split_spec
    from shiftlab.registry import register_model

    split_spec(spec)
    register_model(name, spec, _ws())
    out.print(f"registered model {name} = {spec}")


@world_app.command("build")
def world_build(seed: int = typer.Option(0, help="Every random choice of the world derives from it."),
                force: bool = typer.Option(False, help="Rebuild even if a world with this seed exists.")):
    """Build the digits world (deterministic from the seed) and register its splits as datasets."""
    from shiftlab.data.world import WorldConfig, build_world

    w = build_world(_ws(), WorldConfig(seed=seed), force=force)
    truth = w.truth()
    t = _table(f"digits world (seed {w.seed}) in {w.root}", ["dataset", "images"], right=("images",))
    for split, n in w.info["counts"].items():
        t.add_row(f"world-{split}", str(n))
    out.print(t)
    out.print(f"planted: {len(truth['duplicates'])} near-duplicates, {len(truth['watermarks'])} watermarks, "
              f"{len(truth['label_errors'])} label errors in test, spurious cues on classes "
              f"{', '.join(truth['spurious']['classes'])}, {len(truth['wrong_class_candidates'])} wrong-class "
              f"candidates; ground truth in {w.root / 'truth'}, crowd votes in {w.hits_results}")


@zoo_app.command("train")
def zoo_train(names: str | None = typer.Option(None, help="Comma-separated zoo names [default: all].")):
    """Train the zoo models that are not cached yet (on world-train) and list them all."""
    from shiftlab.data.world import load_world
    from shiftlab.models.zoo import summary, train_zoo

    world = load_world(_ws())
    entries = train_zoo(world.manifest("train"), _ws(), names=names.split(",") if names else None)
    df = summary(entries)
    t = _table("digits-world zoo", ["spec", "family", "training", "params", "train s", "train acc", "cached"],
               right=("params", "train s", "train acc"))
    for r in df.itertuples():
        t.add_row(f"world:{r.name}", r.family, r.training, f"{r.params:,}", f"{r.seconds:.1f}",
                  f"{r.final_acc:.1%}", "yes" if r.cached else "trained now")
    out.print(t)


@candidates_app.command("import")
def candidates_import(
    source: Path = typer.Argument(..., help="A folder <class>/<files> or a CSV with path,class[,source_id,…]."),
    name: str = typer.Option(..., help="Name of the pool manifest, e.g. mypool-candidates."),
    vocabulary: str = typer.Option("imagenet-1k", help="imagenet-1k, digits, or a JSON list of class names."),
    out_dir: Path | None = typer.Option(None, "--out", help="Where the scaled copies go "
                                                            "[default: <workspace>/candidates/<name>]."),
):
    """Turn candidate images into a pool manifest with stable ids, 256×256 scaled copies and a blacklist."""
    from shiftlab.curate.candidates import import_candidates
    from shiftlab.registry import check_name, register_dataset

    check_name(name)
    m, blacklist = import_candidates(source, vocabulary=_vocab(vocabulary), name=name,
                                     out_dir=out_dir or _ws().root / "candidates" / name)
    p = register_dataset(m, name, _ws())
    out.print(f"registered {name}: {len(m)} candidates in {m.table['label'].nunique()} classes → {p}; "
              f"{len(blacklist)} blacklisted (unreadable) → {Path(m.root) / 'blacklist.json'}")


def _similar_classes(vocab, similar: Path | None) -> dict[int, list[int]]:
    """Class → most similar other classes (negative HIT controls come from the first)."""
    import json

    if similar is not None:
        try:
            raw = json.loads(similar.read_text())
        except (OSError, ValueError) as e:
            raise InputError(f"{similar}: not a readable JSON file ({e})") from None
        out_map = {}
        for k, v in raw.items():  # ImageNetV2's most_similar_wnids.json lists the class itself first
            i = vocab.index_of(str(k))
            out_map[i] = [vocab.index_of(str(x)) for x in v if vocab.index_of(str(x)) != i]
        return out_map
    if vocab.name == "digits":
        from shiftlab.data.world.hierarchy import SIMILAR

        return {k: list(v) for k, v in SIMILAR.items()}
    raise InputError(f"give --similar (a JSON of class → most similar classes, e.g. ImageNetV2's "
                     f"most_similar_wnids.json) for the {vocab.name} vocabulary")


@hits_app.command("make")
def hits_make(
    pool: str = typer.Option(..., help="Pool manifest (registered name or path): candidates by label."),
    reference_val: str = typer.Option(..., "--reference-val", help="Validation set: the HITs' controls."),
    seed: int = typer.Option(..., help="Seed of the control draws and the shuffles (recorded)."),
    similar: Path | None = typer.Option(None, help="JSON class → most similar classes (negative controls)."),
    annotate_val: bool = typer.Option(False, "--annotate-val", help="Also annotate the validation images as "
                                                                    "candidates (MatchedFrequency needs them)."),
    out_dir: Path | None = typer.Option(None, "--out", help="[default: <workspace>/hits/<pool>]"),
):
    """Write HIT batches of 48 (42 candidates + 3 positive + 3 negative controls) as JSON and a crowd CSV."""
    from shiftlab.curate.annotate import hits_for_pool, write_hit_batch
    from shiftlab.data.layouts import read_dataset

    p = read_dataset(pool, workspace=_ws())
    v = read_dataset(reference_val, workspace=_ws())
    if p.vocabulary.name != v.vocabulary.name:
        raise InputError(f"{pool} uses {p.vocabulary.name} but {reference_val} uses {v.vocabulary.name}")
    hits = hits_for_pool(p, v, _similar_classes(p.vocabulary, similar), seed=seed, annotate_validation=annotate_val)
    folder = out_dir or _ws().root / "hits" / p.name
    batch, csv = write_hit_batch(hits, folder, p.vocabulary.names, [c.gloss for c in p.vocabulary.classes],
                                 seed=seed)
    out.print(f"{len(hits)} HITs for {p.table['label'].nunique()} classes → {batch} and {csv} (batch input CSV)")


@hits_app.command("import")
def hits_import(
    results: Path = typer.Argument(..., help="Batch results CSV (one row per assignment)."),
    batch: Path = typer.Option(..., help="batch.json written by 'hits make' (opaque URL → image)."),
    pool: str | None = typer.Option(None, help="Pool to annotate: adds selection_frequency and n_annotations "
                                               "and registers it again."),
    min_worker_accuracy: float | None = typer.Option(None, help="Drop workers below this control accuracy."),
    out_dir: Path | None = typer.Option(None, "--out", help="[default: the batch's folder]"),
):
    """Selection frequency and valid annotations per (image, class), and workers' control accuracy."""
    from shiftlab.curate.votes import attach_frequencies, import_votes
    from shiftlab.data.layouts import read_dataset
    from shiftlab.registry import register_dataset

    p = read_dataset(pool, workspace=_ws()) if pool else None  # validate before writing anything
    r = import_votes(results, batch, min_worker_accuracy=min_worker_accuracy)
    folder = out_dir or (batch.parent if batch.is_file() else batch)
    folder.mkdir(parents=True, exist_ok=True)
    r.frequencies.to_parquet(folder / "frequencies.parquet", index=False)
    r.workers.to_csv(folder / "workers.csv", index=False)
    s = r.summary()
    out.print(f"{s['assignments']} assignments ({s['rejected_assignments']} rejected, {s['dropped_workers']} "
              f"workers dropped) → {s['candidate_pairs']} candidate (image, class) pairs, ≥ "
              f"{s['min_valid_per_candidate']} valid annotations each, mean frequency "
              f"{s['mean_candidate_frequency']:.3f}; wrote {folder / 'frequencies.parquet'} and "
              f"{folder / 'workers.csv'}")
    if p is not None:
        register_dataset(attach_frequencies(p, r), p.name, _ws())
        out.print(f"{p.name} now carries selection_frequency and n_annotations")


@app.command()
def dedup(
    query: str = typer.Option(..., help="The candidate pool (registered name or path)."),
    reference: str = typer.Option(..., help="Comma-separated sets to search (e.g. world-train,world-test,world-pool)."),
    metrics: str = typer.Option("l2,dssim,phash", help="Any of l2, dssim, embedding (alias fc7), phash, "
                                                            "aligned (crop/shift-tolerant l2)."),
    k: int = typer.Option(100, "-k", min=1, help="Neighbours kept per query, reference set and metric."),
    review_k: int = typer.Option(30, "--review-k", min=1, help="How deep a reviewer looks (ImageNetV2: 30)."),
    embed_model: str | None = typer.Option(None, "--embed-model", help="Model whose penultimate features "
                                                                       "give the embedding metric."),
    size: int = typer.Option(256, help="Side of the scaled copies compared, px."),
    threshold: list[str] = typer.Option([], help="metric=value, overriding a review threshold (repeatable)."),
    quantile: float | None = typer.Option(None, help="Read the review thresholds off the data: this quantile "
                                                     "of each metric's distances to the first review-k "
                                                     "neighbours (e.g. 0.02; aligned keeps its own). For data "
                                                     "unlike ImageNet's photos or sizes other than 256 px."),
    reviews: Path | None = typer.Option(None, help="Review decisions CSV query,reference,is_duplicate,reviewer: "
                                                   "adds review thresholds and the S1.4 resolution."),
    device: str = typer.Option("auto", help="auto | cpu | cuda[:N] (SSIM and embeddings)."),
    out_dir: Path | None = typer.Option(None, "--out", help="[default: <workspace>/dedup/<query>]"),
):
    """Near-duplicates of a candidate pool (ImageNetV2 S1.3/S1.4): neighbours, review queue, resolution."""
    from shiftlab.curate import dedup as dd
    from shiftlab.curate.pipeline import dedup_pool
    from shiftlab.data.layouts import read_dataset

    thresholds = {}
    for t in threshold:
        name, sep, value = t.partition("=")
        try:
            thresholds[name.strip()] = float(value)
        except ValueError:
            raise InputError(f"--threshold {t!r}: use metric=value, e.g. l2=1.2e8") from None
        if not sep or name.strip() not in dd.IMAGENETV2_THRESHOLDS:
            raise InputError(f"--threshold {t!r}: metric must be one of {', '.join(dd.IMAGENETV2_THRESHOLDS)}")
    if quantile is not None and not 0 < quantile < 1:
        raise InputError(f"--quantile {quantile}: give a fraction between 0 and 1, e.g. 0.02")
    review_table = dd.read_review_csv(reviews) if reviews else None
    q = read_dataset(query, workspace=_ws())
    refs = {name.strip(): read_dataset(name.strip(), workspace=_ws()) for name in reference.split(",") if name.strip()}
    r = dedup_pool(q, refs, [m.strip() for m in metrics.split(",") if m.strip()], k, review_k=review_k,
                   thresholds=thresholds or None, quantile=quantile, reviews=review_table, model=embed_model,
                   size=size, workspace=_ws(), device=device, progress=True)
    written = r.write(out_dir or _ws().root / "dedup" / q.name)
    t = _table(f"near-duplicate review queue of {q.name} ({len(q)} candidates)",
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


_STRATEGIES = {"threshold": "a", "matched": "b", "top": "c"}


@app.command()
def sample(
    strategy: str = typer.Option(..., help="threshold (a) | matched (b) | top (c)."),
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
    from shiftlab.curate.pipeline import sample_pool_revision
    from shiftlab.curate.revisions import read_class_thresholds
    from shiftlab.data.layouts import read_dataset
    from shiftlab.registry import register_dataset

    if strategy not in _STRATEGIES:
        raise InputError(f"--strategy must be one of {', '.join(_STRATEGIES)}")
    if (dedup_dir is None) == (not no_dedup):
        raise InputError("give --dedup DIR (from 'shiftlab dedup --reviews') or, knowingly, --no-dedup")
    p = read_dataset(pool, workspace=_ws())
    s = sample_pool_revision(p, _STRATEGIES[strategy], seed=seed, dedup_dir=None if no_dedup else dedup_dir,
                             validation=read_dataset(reference_val, workspace=_ws()) if reference_val else None,
                             parent=parent, per_class=per_class, allow_upward_sampling=allow_upward,
                             class_thresholds=read_class_thresholds(thresholds) if thresholds else None,
                             dataset=dataset, time_string=time_string, username=username)
    rev, cands = s.revision, s.candidates
    folder = out_dir or _ws().root / "revisions"
    folder.mkdir(parents=True, exist_ok=True)
    path = rev.write(folder / rev.filename)
    register_dataset(s.manifest, rev.name, _ws())
    res = rev.result
    validity = "valid" if rev.is_valid else f"NOT valid: {len(res.short_classes)} short classes"
    out.print(f"{rev.name}: {len(s.manifest)} images in {len(res.classes)} classes ({validity}); "
              f"{sum(len(v) for v in res.carried_over.values())} carried over from the parent; "
              f"{int(cands.near_duplicate.sum())} near-duplicates and {int((~cands.reviewed).sum())} unreviewed "
              f"candidates were not eligible; wrote {path} and registered dataset {rev.name}")


@app.command()
def robustness(
    id_set: str | None = typer.Option(None, "--id", help="In-distribution dataset (with --models), or the column "
                                                         "of --results."),
    ood_set: str | None = typer.Option(None, "--ood", help="Shifted dataset (with --models), or the column of "
                                                           "--results."),
    models: str | None = typer.Option(None, "--models", "-m", help="Comma-separated model specs to evaluate."),
    results: Path | None = typer.Option(None, help="Accuracies computed elsewhere: imagenet-testbed top1s.csv "
                                                   "(percent) or a CSV written by 'shiftlab eval --out'."),
    types: Path | None = typer.Option(None, help="model,type[,type_description] CSV (testbed model_types.csv)."),
    reference: str | None = typer.Option(None, help="Model type(s) the line is fitted on, comma-separated "
                                                    "[default: STANDARD when types are known, else all]."),
    baseline: str | None = typer.Option(None, help="Model for relative robustness."),
    scale: str = typer.Option("logit", help="logit | probit | linear."),
    n_boot: int = typer.Option(1000, "--n-boot", min=0, help="Bootstrap resamples for the bands."),
    seed: int = typer.Option(0, help="Seed of the bootstrap."),
    out_dir: Path | None = typer.Option(None, "--out", help="Folder for robustness.csv and the plot report "
                                                            "[default: <workspace>/reports/robustness-<id>-<ood>]."),
):
    """Effective robustness: fit the line of shifted vs in-distribution accuracy over a reference group."""
    import pandas as pd

    from shiftlab.metrics import robustness as rb
    from shiftlab.report import Report

    if not id_set or not ood_set:
        raise InputError("give --id and --ood (datasets with --models, or columns of --results)")
    if (models is None) == (results is None):
        raise InputError("give either --models (evaluated here) or --results (a CSV of accuracies)")
    if scale not in rb.SCALES:
        raise InputError(f"--scale must be one of {', '.join(rb.SCALES)}")
    if results is not None:
        if not results.is_file():
            raise InputError(f"{results}: no such file")
        head = pd.read_csv(results, nrows=1)
        if {"model", "dataset", "top1"} <= set(head.columns):
            table = rb.pivot_results(pd.read_csv(results), id_set, ood_set)
            id_col, ood_col = "id_acc", "ood_acc"
        else:
            table = rb.load_testbed(results, types)
            for col in (id_set, ood_set):
                if col not in table.columns:
                    raise InputError(f"{results}: no column {col!r} "
                                     "(e.g. val, imagenetv2-matched-frequency-format-val)")
            id_col, ood_col = id_set, ood_set
    else:
        from shiftlab.evaluate import evaluate

        specs = _specs(models)
        a = evaluate(id_set, specs, workspace=_ws()).table
        b = evaluate(ood_set, specs, workspace=_ws()).table
        a["dataset"], b["dataset"] = "id", "ood"
        table = rb.pivot_results(pd.concat([a, b]), "id", "ood")
        id_col, ood_col = "id_acc", "ood_acc"
    if types is not None and "type" not in table.columns:
        table = table.merge(pd.read_csv(types)[["model", "type"]], on="model", how="left")
    ref = reference.split(",") if reference else None
    er = rb.effective_robustness(table, id_col, ood_col, ref[0] if ref and len(ref) == 1 else ref,
                                 scale=scale, baseline=baseline, n_boot=n_boot, seed=seed)
    fit = er.attrs["fit"]
    shown = er.sort_values("effective_robustness", ascending=False)
    t = _table(f"effective robustness ({ood_set} vs {id_set}; fit on {int(er.in_reference.sum())} models)",
               ["model", "type", "id %", "shifted %", "predicted %", "eff. robustness (points) [95%]",
                "relative"], right=("id %", "shifted %", "predicted %", "eff. robustness (points) [95%]", "relative"))
    for r in shown.head(40).itertuples():
        kind = getattr(r, "type", None)
        t.add_row(str(r.model), "" if pd.isna(kind) else str(kind), f"{100 * r.id_acc:.2f}", f"{100 * r.ood_acc:.2f}",
                  f"{100 * r.predicted_ood:.2f}",
                  f"{100 * r.effective_robustness:+.2f} [{100 * r.effective_robustness_low:+.2f}, "
                  f"{100 * r.effective_robustness_high:+.2f}]",
                  "—" if r.relative_robustness != r.relative_robustness else f"{100 * r.relative_robustness:+.2f}")
    out.print(t)
    if len(shown) > 40:
        out.print(f"(first 40 of {len(shown)} models by effective robustness; all of them in the CSV)")
    out.print(f"fit in {scale} space: slope {fit.slope:.3f}, intercept {fit.intercept:.3f} over {fit.n} models")
    folder = out_dir or _ws().reports / f"robustness-{Path(id_set).stem}-{Path(ood_set).stem}"
    folder.mkdir(parents=True, exist_ok=True)
    er.to_csv(folder / "robustness.csv", index=False)
    rep = Report(f"Effective robustness: {ood_set} vs {id_set}",
                 f"Least-squares line in {scale} space over the reference models; effective robustness = shifted "
                 "accuracy − the line's prediction, with 95% bootstrap intervals.",
                 meta={"slope": round(fit.slope, 4), "intercept": round(fit.intercept, 4), "models in fit": fit.n,
                       "bootstrap": f"{n_boot} resamples, seed {seed}"})
    sec = rep.section("The fit")
    sec.figure(rb.robustness_plot(er, fit, rb.band_for_table(er), group_col="type" if "type" in er else None,
                                  xlabel=f"{id_set} top-1", ylabel=f"{ood_set} top-1"), "robustness",
               "Fit with its 95% bootstrap band; the dashed line is y = x.")
    path = rep.write(folder)
    out.print(f"wrote {folder / 'robustness.csv'} and {path}")


@app.command()
def demo(seed: int = typer.Option(0, help="Seed of the world.")):
    """Build the embedded digits world, train its zoo, evaluate it and write the demo report."""
    import time

    from shiftlab.demo import run_demo

    t = time.perf_counter()
    res = run_demo(_ws(), seed=seed)
    res.report.to_console(out)
    out.print(f"report: {res.path}  ({time.perf_counter() - t:.0f} s)")


# --- review app -------------------------------------------------------------------------------------------
review_app = typer.Typer(help="The review app and its decision log (near-duplicates, class browser, labelling, "
                              "image decisions).", no_args_is_help=True)
review_task_app = typer.Typer(help="Create a review task in the workspace.", no_args_is_help=True)
app.add_typer(review_app, name="review")
review_app.add_typer(review_task_app, name="task")


@review_app.command("serve")
def review_serve(
    host: str = typer.Option("127.0.0.1", help="Interface to listen on (loopback by default)."),
    port: int = typer.Option(0, min=0, max=65535, help="Port; 0 picks a free one."),
    reviewer: str | None = typer.Option(None, help="Who is deciding [default: each browser asks on first visit]."),
):
    """Serve the review app; prints one URL carrying the access token (every route needs it)."""
    from shiftlab.review.server import serve

    serve(_ws(), host=host, port=port, reviewer=reviewer)


def _task_done(task: dict, n: int, what: str) -> None:
    from shiftlab.review.images import warm_thumbnails

    # thumbnails now, so the first page view reads small cached files instead of decoding
    shown, wanted = warm_thumbnails(task, _ws())
    skipped = wanted - shown
    out.print(f"review task {task['name']!r} ({task['kind']}): {n} {what}"
              + (f"; {skipped} image(s) could not be decoded and show as gaps" if skipped else "")
              + "; open it with 'shiftlab review serve'")


@review_task_app.command("duplicates")
def review_task_duplicates(
    dedup_dir: Path = typer.Option(..., "--dedup", help="Folder written by 'shiftlab dedup' (queue.csv, neighbours)."),
    query: str | None = typer.Option(None, help="Dataset the queue was built from [default: the folder's name]."),
    name: str | None = typer.Option(None, help="Task name [default: duplicates-<query>]."),
):
    """The near-duplicate review queue: a query beside its flagged neighbours."""
    from shiftlab.review.tasks import duplicates_task

    t = duplicates_task(dedup_dir, query=query, name=name, workspace=_ws())
    _task_done(t, len(t["items"]), "pairs to review")


@review_task_app.command("classes")
def review_task_classes(
    dataset: str = typer.Option(..., help="Pool to browse (with selection frequencies when annotated)."),
    reference: str | None = typer.Option(None, help="Dataset whose images of each class are shown for comparison."),
    name: str | None = typer.Option(None, help="Task name [default: classes-<dataset>]."),
):
    """ImageNetV2's class browser: candidates per class; blacklist with a reason."""
    from shiftlab.data.layouts import read_dataset
    from shiftlab.review.tasks import classes_task

    t = classes_task(dataset, reference=reference, name=name, workspace=_ws())
    n_classes = len(read_dataset(dataset, workspace=_ws()).table["label"].unique())
    _task_done(t, n_classes, "classes")


@review_task_app.command("labelling")
def review_task_labelling(
    batch: Path = typer.Option(..., help="HIT batch folder or batch.json ('shiftlab hits make')."),
    datasets: str = typer.Option(..., help="Comma-separated datasets holding its images (pool, validation)."),
    name: str | None = typer.Option(None, help="Task name [default: labelling-<batch folder>]."),
):
    """Annotators' pages of a HIT batch; export them with 'review export --format mturk' for 'hits import'."""
    from shiftlab.review.tasks import labelling_task

    t = labelling_task(batch, [d.strip() for d in datasets.split(",") if d.strip()], name=name, workspace=_ws())
    _task_done(t, len(t["items"]), "HIT pages")


@review_task_app.command("images")
def review_task_images(
    dataset: str = typer.Option(...),
    config: str = typer.Option("watermarks", help="Built-in configuration name or a JSON file {title, "
                                                  "instructions, decisions: [{name, reasons?, crop?}]}."),
    ids: Path | None = typer.Option(None, help="Queue only these: a text file of ids, one per line."),
    name: str | None = typer.Option(None, help="Task name [default: images-<dataset>]."),
):
    """A per-image decision queue with configurable decisions, reasons and crop boxes."""
    from shiftlab.review.tasks import images_task

    items = None
    if ids is not None:
        try:
            items = [{"id": s.strip()} for s in ids.read_text().splitlines() if s.strip()]
        except OSError as e:
            raise InputError(f"{ids}: cannot read ids ({e.strerror or e})") from None
    t = images_task(dataset, config, name=name, items=items, workspace=_ws())
    _task_done(t, len(t["items"]), "images")


@review_app.command("export")
def review_export(
    task: str | None = typer.Option(None, help="Task to export [default: every event of the log]."),
    fmt: str = typer.Option("jsonl", "--format", help="jsonl | parquet (all events); reviews (duplicates task: "
                                                      "the CSV of 'dedup --reviews'); mturk (labelling task: a "
                                                      "results CSV for 'hits import'); blacklist (classes task)."),
    out_path: Path = typer.Option(..., "--out", help="File to write."),
):
    """Export the decision log, or a task's decisions in the shape the next step reads."""
    from shiftlab.fsutil import atomic_write_bytes, atomic_write_json
    from shiftlab.review import tasks as tk
    from shiftlab.review.log import open_log

    formats = ("jsonl", "parquet", "reviews", "mturk", "blacklist")
    if fmt not in formats:
        raise InputError(f"--format {fmt!r}: one of {', '.join(formats)}")
    if not out_path.parent.is_dir():
        raise InputError(f"--out {out_path}: no folder {out_path.parent}")
    t = tk.load_task(task, _ws()) if task else None
    need = {"reviews": "duplicates", "mturk": "labelling", "blacklist": "classes"}.get(fmt)
    if need and (t is None or t["kind"] != need):
        raise InputError(f"--format {fmt} exports a {need} task: give --task NAME of one")
    log = open_log(tk.log_path(_ws()))
    try:
        if fmt == "jsonl":
            log.export_jsonl(out_path, task)
            n = log.count(task)
        elif fmt == "parquet":
            log.export_parquet(out_path, task)
            n = log.count(task)
        elif fmt == "reviews":
            df = tk.duplicate_reviews(log, t)
            atomic_write_bytes(out_path, df.to_csv(index=False, lineterminator="\n").encode())
            n = len(df)
        elif fmt == "mturk":
            df = tk.labelling_results(log, t)
            atomic_write_bytes(out_path, df.to_csv(index=False, lineterminator="\n").encode())
            n = len(df)
        else:
            bl = tk.blacklist(log, task)
            atomic_write_json(out_path, bl)
            n = len(bl)
    finally:
        log.close()
    out.print(f"wrote {n} {'events' if fmt in ('jsonl', 'parquet') else 'rows'} to {out_path}")


def _label_metrics(res, labels: list[str], allow_missing_classes: bool, out_file: Path | None) -> None:
    """``eval --labels``: multi-label accuracy, ImageNet-M and ReaL of the evaluated models."""
    import pandas as pd

    from shiftlab.metrics.multilabel import apply_label_sources, multilabel_summary

    m = apply_label_sources(res.manifest, labels)
    df = multilabel_summary(m, res.predictions, allow_missing_classes=allow_missing_classes)
    groups = [("ml_accuracy", "multi-label %"), ("imagenet_m_correct", "ImageNet-M"), ("real_top1", "ReaL top-1 %"),
              ("real_top5", "ReaL top-5 %")]
    shown = [(c, h) for c, h in groups if df[c].notna().any()]
    t = _table(f"{m.name}: accuracy under the extra labels", ["model", "top-1 %", *[h for _, h in shown]],
               right=("top-1 %", *[h for _, h in shown]))
    for r in df.itertuples():
        cells = []
        for c, _ in shown:
            v = getattr(r, c)
            cells.append(f"{int(v)}/{int(r.imagenet_m_size)}" if c == "imagenet_m_correct" else _pct(v))
        t.add_row(str(r.model), _pct(r.top1), *cells)
    out.print(t)
    first = df.iloc[0]
    if pd.notna(first.ml_accuracy):
        used = f"{int(first.ml_classes_used)} of {int(first.ml_classes)} classes" if \
            first.ml_classes_used != first.ml_classes else f"all {int(first.ml_classes)} classes"
        out.print(f"multi-label: {int(first.ml_scored):,} images scored over {used}; "
                  f"{int(first.ml_problematic):,} problematic dropped; {int(first.ml_empty):,} with no correct or "
                  "unclear label counted wrong")
    if pd.notna(first.real_top1):
        out.print(f"ReaL: {int(first.real_kept):,} images kept, {int(first.real_dropped):,} with an empty label "
                  "set dropped")
    if out_file is not None:
        f = Path(out_file).with_name(Path(out_file).stem + "-labels.csv")
        df.to_csv(f, index=False)
        out.print(f"wrote {f}")


def _specs(models: str) -> list[str]:
    specs = [m.strip() for m in models.split(",") if m.strip()]
    if not specs:
        raise InputError("--models is empty; give one or more model specs, comma-separated")
    return specs


def _labelled_dataset(dataset: str, labels: list[str] | None):
    from shiftlab.data.layouts import read_dataset
    from shiftlab.metrics.multilabel import apply_label_sources

    m = read_dataset(dataset, workspace=_ws())
    return apply_label_sources(m, labels) if labels else m


@app.command()
def mistakes(
    model: str = typer.Option(..., "--model", "-m", help="Model spec or name."),
    dataset: str = typer.Option(..., "--dataset", "-d", help="Registered dataset name or a path."),
    labels: list[str] | None = typer.Option(None, "--labels", help="real:/tfds:/imagenet-m: label sources "
                                            "(as for eval); a set with multi-label columns needs none."),
    train: str | None = typer.Option(None, help="Training set searched for nearest neighbours [default: world-train "
                                                "for world sets, else none (check skipped)]."),
    feature_model: str | None = typer.Option(None, "--feature-model", help="Model whose features the neighbour "
                                                                           "search uses [default: --model]."),
    hierarchy: Path | None = typer.Option(None, help="BREEDS hierarchy folder [default: the packaged ImageNet one, "
                                                     "or the world's]."),
    cues: Path | None = typer.Option(None, help="JSON {image id: [class, …]}: the spurious cues each image shows "
                                                "[default: the world's ground truth]."),
    k: int = typer.Option(10, "-k", min=1, help="Nearest training images per error."),
    min_neighbours: int = typer.Option(2, "--min-neighbours", min=1, help="How many of them must be of the "
                                                                          "predicted class."),
    max_hops: int = typer.Option(2, "--max-hops", min=1, help="Shared superclass at most this many levels up."),
    out_file: Path | None = typer.Option(None, "--out", help="Write the suggestions as *_mistakes.json (and the "
                                                             "evidence as .csv beside)."),
    queue: Path | None = typer.Option(None, help="Write review-queue items (JSON) for the review app."),
    review_task: str | None = typer.Option(None, "--review-task", help="Make a review-app task of this name "
                                                                       "over the mistakes, for people to confirm."),
    reviewed: str | None = typer.Option(None, help="Review task whose decisions (folded from the workspace's "
                                                   "log) override the suggestions in --out."),
    device: str = typer.Option("auto", help="auto | cpu | cuda[:N]."),
    batch_size: int = typer.Option(64, "--batch-size", min=1),
):
    """Every top-1 error of a model with a suggested mistake category and its evidence (SPECS S2)."""
    if reviewed is not None and out_file is None:
        raise InputError("--reviewed writes the final records: give --out FILE_mistakes.json too")
    import json

    from shiftlab.analyze import mistakes as mk
    from shiftlab.data.hierarchy import load_hierarchy
    from shiftlab.data.layouts import read_dataset
    from shiftlab.fsutil import atomic_write_json

    m = _labelled_dataset(dataset, labels)
    ctx = mk.default_context(m, _ws())
    if hierarchy is not None:
        ctx["hierarchy"] = load_hierarchy(hierarchy, n_classes=len(m.vocabulary))
    if train is not None:
        ctx["train"] = read_dataset(train, workspace=_ws())
    if cues is not None:
        try:
            raw = json.loads(cues.read_text())
            ctx["cues"] = {str(i): [int(c) for c in v] for i, v in raw.items()}
        except (OSError, ValueError, TypeError, AttributeError) as e:
            raise InputError(f"{cues}: expected a JSON object {{image id: [class, …]}} ({e})") from None
    res = mk.find_mistakes(m, model, workspace=_ws(), **ctx, feature_model=feature_model, k=k,
                           min_neighbours=min_neighbours, max_hops=max_hops, device=device, batch_size=batch_size)
    frac = res.fractions()
    t = _table(f"{res.model} on {m.name}: {res.n_errors} top-1 errors of {res.n_images} scored images "
               f"(top-1 {_pct(res.top1)} %)", ["category", "errors", "share %"], right=("errors", "share %"))
    counts = res.table["category"].value_counts()
    for c, f in frac.items():
        t.add_row(c, str(int(counts.get(c, 0))), _pct(f))
    out.print(t)
    skipped = [c for c in ("multilabels", "hierarchy", "neighbours", "cues") if c not in res.checks]
    if skipped:
        out.print(f"checks skipped for lack of input: {', '.join(skipped)}")
    e = _table("errors (first 30)", ["id", "label → prediction", "category", "evidence"])
    for r in res.table.head(30).itertuples():
        e.add_row(str(r.id), f"{r.label_name} → {r.prediction_name}", r.category, r.evidence)
    out.print(e)
    if reviewed is not None:
        from shiftlab.review import tasks as tk
        from shiftlab.review.log import open_log

        tk.load_task(reviewed, _ws())  # a clear error for a task that does not exist
        log = open_log(tk.log_path(_ws()))
        try:
            final = mk.apply_review_decisions(res.table, log.state(reviewed))
        finally:
            log.close()
        p = mk.save_mistakes(final, out_file)
        n_rev = int(final["reviewed"].sum())
        out.print(f"wrote {p}: {len(final)} errors, {n_rev} decided in review task {reviewed!r}, "
                  f"{len(final) - n_rev} keep the automatic suggestion")
    elif out_file is not None:
        p = mk.save_mistakes(res.records(), out_file)
        res.table.to_csv(p.with_suffix(".csv"), index=False)
        out.print(f"wrote {p} ({int((res.table.category != mk.NOT_A_MISTAKE).sum())} mistakes) and "
                  f"{p.with_suffix('.csv')} (all {res.n_errors} errors with evidence)")
    if review_task is not None:
        from shiftlab.review.tasks import images_task

        t = images_task(m.name, mk.review_config(), name=review_task, workspace=_ws(),
                        items=mk.review_queue_items(res.table, include_not_mistakes=False))
        _task_done(t, len(t["items"]), "mistakes to confirm")
    if queue is not None:
        queue.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(queue, {"model": res.model, "dataset": m.name, "items": mk.review_queue_items(res.table)})
        out.print(f"wrote {queue}")


@app.command()
def confusions(
    models: str = typer.Option(..., "--models", "-m", help="Comma-separated model specs or names."),
    dataset: str = typer.Option(..., "--dataset", "-d", help="Registered dataset name or a path."),
    labels: list[str] | None = typer.Option(None, "--labels", help="tfds:/imagenet-m: multi-labels; errors the "
                                            "multi-labels accept are not counted."),
    top: int = typer.Option(20, min=1, help="Pairs shown and plotted."),
    out_dir: Path | None = typer.Option(None, "--out", help="Folder for confusions.csv and confusions.png "
                                                            "[default: <workspace>/reports/confusions-<dataset>]."),
):
    """Unordered class-pair confusion counts over the top-1 errors of a set of models."""
    from shiftlab.analyze.mistakes import confusion_figure, model_confusions
    from shiftlab.predict.engine import predict

    m = _labelled_dataset(dataset, labels)
    specs = _specs(models)
    pairs = model_confusions(m, predict(m, specs, workspace=_ws()))
    n_models = len(specs)
    t = _table(f"{m.name}: {int(pairs['count'].sum()) if len(pairs) else 0} top-1 errors of {n_models} model(s) "
               f"in {len(pairs)} class pairs", ["class a", "class b", "errors", "models"], right=("errors", "models"))
    for r in pairs.head(top).itertuples():
        t.add_row(f"{r.a_name} ({r.a})", f"{r.b_name} ({r.b})", str(r.count), str(r.models))
    out.print(t)
    folder = out_dir or _ws().reports / f"confusions-{Path(m.name).stem}"
    folder.mkdir(parents=True, exist_ok=True)
    pairs.to_csv(folder / "confusions.csv", index=False)
    written = [folder / "confusions.csv"]
    if len(pairs):
        fig = confusion_figure(pairs, top, title=f"Most frequent confusions on {m.name}")
        fig.savefig(folder / "confusions.png", dpi=150, bbox_inches="tight", facecolor="white")
        written.append(folder / "confusions.png")
    out.print("wrote " + ", ".join(map(str, written)))


@app.command("label-issues")
def label_issues_cmd(
    dataset: str = typer.Option(..., "--dataset", "-d", help="Registered dataset name or a path."),
    models: str = typer.Option(..., "--models", "-m", help="Models NOT trained on these images (their mean "
                                                           "probabilities are the out-of-sample estimate)."),
    top: int = typer.Option(20, min=1, help="Rows shown."),
    out_file: Path | None = typer.Option(None, "--out", help="Write the whole ranking as CSV."),
):
    """Rank the images whose given label is most likely wrong (cleanlab's find_label_issues)."""
    from shiftlab.analyze.label_issues import label_issues

    m = _labelled_dataset(dataset, None)
    df = label_issues(m, _specs(models), workspace=_ws())
    t = _table(f"{m.name}: {int(df.is_label_issue.sum())} of {len(df)} labels flagged by cleanlab",
               ["rank", "id", "given", "suggested", "p(given)", "flagged"], right=("rank", "p(given)"))
    for r in df.head(top).itertuples():
        t.add_row(str(r.rank), str(r.id), r.given_name, f"{r.suggested_name} ({r.suggested_probability:.2f})",
                  f"{r.label_quality:.3f}", "yes" if r.is_label_issue else "")
    out.print(t)
    if out_file is not None:
        out_file.parent.mkdir(parents=True, exist_ok=True)
        df.to_csv(out_file, index=False)
        out.print(f"wrote {out_file}")


def main(argv: list[str] | None = None) -> int:
    cmd = typer.main.get_command(app)
    try:
        cmd.main(args=argv, prog_name="shiftlab", standalone_mode=False)
    except _cx.NoArgsIsHelpError:
        return 0
    except typer.Exit as e:
        return e.exit_code
    except typer.Abort:
        print("aborted", file=sys.stderr)
        return 130
    except _cx.UsageError as e:
        print(f"error: {e.format_message()} (see 'shiftlab {_sub(e)}--help')", file=sys.stderr)
        return 2
    except _cx.ClickException as e:
        print(f"error: {e.format_message()}", file=sys.stderr)
        return 2
    except ShiftlabError as e:
        if _state["debug"]:
            raise
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; finished chunks are kept and the next run resumes", file=sys.stderr)
        return 130
    return 0


def _sub(e: _cx.UsageError) -> str:
    ctx = getattr(e, "ctx", None)
    if ctx is None or ctx.parent is None:
        return ""
    return " ".join(ctx.command_path.split()[1:]) + " "


if __name__ == "__main__":
    sys.exit(main())


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
