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
    specs = [m.strip() for m in models.split(",") if m.strip()]
    if not specs:
        raise InputError("--models is empty; give one or more model specs, comma-separated")
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
    metrics: str = typer.Option("l2,dssim,phash", help="Any of l2, dssim, embedding (alias fc7), phash."),
    k: int = typer.Option(100, "-k", min=1, help="Neighbours kept per query, reference set and metric."),
    review_k: int = typer.Option(30, "--review-k", min=1, help="How deep a reviewer looks (ImageNetV2: 30)."),
    embed_model: str | None = typer.Option(None, "--embed-model", help="Model whose penultimate features "
                                                                       "give the embedding metric."),
    size: int = typer.Option(256, help="Side of the scaled copies compared, px."),
    threshold: list[str] = typer.Option([], help="metric=value, overriding a review threshold (repeatable)."),
    reviews: Path | None = typer.Option(None, help="Review decisions CSV query,reference,is_duplicate,reviewer: "
                                                   "adds review thresholds and the S1.4 resolution."),
    device: str = typer.Option("auto", help="auto | cpu | cuda[:N] (SSIM and embeddings)."),
    out_dir: Path | None = typer.Option(None, "--out", help="[default: <workspace>/dedup/<query>]"),
):
    """Near-duplicates of a candidate pool (ImageNetV2 S1.3/S1.4): neighbours, review queue, resolution."""
    import pandas as pd

    from shiftlab.curate import dedup as dd
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
    review_table = dd.read_review_csv(reviews) if reviews else None
    q = read_dataset(query, workspace=_ws())
    refs = {name.strip(): read_dataset(name.strip(), workspace=_ws()) for name in reference.split(",") if name.strip()}
    table = dd.find_near_duplicates(q, refs, [m.strip() for m in metrics.split(",") if m.strip()], k,
                                    review_k=review_k, model=embed_model, size=size, workspace=_ws(), device=device,
                                    progress=True)
    queue = dd.review_queue(table, thresholds or None, review_k=review_k)
    folder = out_dir or _ws().root / "dedup" / q.name
    folder.mkdir(parents=True, exist_ok=True)
    table.to_parquet(folder / "neighbours.parquet", index=False)
    queue.to_csv(folder / "queue.csv", index=False)
    t = _table(f"near-duplicate review queue of {q.name} ({len(q)} candidates)",
               ["metric", "queued pairs", "candidates queued"], right=("queued pairs", "candidates queued"))
    for metric, g in queue.groupby("metric"):
        t.add_row(str(metric), str(len(g)), str(g.query_id.nunique()))
    out.print(t)
    written = [folder / "neighbours.parquet", folder / "queue.csv"]
    if review_table is not None:
        links = dd.duplicate_links(review_table)
        reviewed = list(zip(review_table["query"], review_table["reference"]))
        dd.review_thresholds(table, reviewed).to_parquet(folder / "review_thresholds.parquet")
        cands = pd.DataFrame({"id": q.table["id"], "class": q.table["label"],
                              "frequency": q.table.get("selection_frequency", pd.Series(float("nan"), q.table.index)),
                              "source_id": q.table.get("source_id", pd.Series(None, q.table.index))})
        originals = {i for name, m in refs.items() if m.name != q.name for i in m.ids}
        res = dd.resolve_duplicates(cands, links, originals)
        res.to_parquet(folder / "resolution.parquet", index=False)
        out.print(f"{len(links)} reviewed duplicate links: {int((~res.keep).sum())} of {len(res)} candidates "
                  "excluded as near-duplicates")
        written += [folder / "review_thresholds.parquet", folder / "resolution.parquet"]
    out.print("wrote " + ", ".join(str(w) for w in written))


_STRATEGIES = {"threshold": "a", "matched": "b", "top": "c"}


def _frequency_table(m, what: str):
    import pandas as pd

    if "selection_frequency" not in m.table.columns:
        raise InputError(f"{m.name} has no selection frequencies: run 'shiftlab hits import RESULTS --batch "
                         f"BATCH --pool {m.name}' first ({what})")
    return pd.DataFrame({"id": m.table["id"], "class": m.table["label"], "frequency": m.table["selection_frequency"],
                         "n_annotations": m.table["n_annotations"]})


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
    import pandas as pd

    from shiftlab.curate import revisions as rv
    from shiftlab.curate.sample import DEFAULT_REVIEW_TARGETS
    from shiftlab.data.layouts import read_dataset
    from shiftlab.registry import register_dataset

    if strategy not in _STRATEGIES:
        raise InputError(f"--strategy must be one of {', '.join(_STRATEGIES)}")
    if (dedup_dir is None) == (not no_dedup):
        raise InputError("give --dedup DIR (from 'shiftlab dedup --reviews') or, knowingly, --no-dedup")
    letter = _STRATEGIES[strategy]
    p = read_dataset(pool, workspace=_ws())
    cands = _frequency_table(p, "the pool")
    cands["blacklisted"] = False
    if no_dedup:
        cands["near_duplicate"], cands["reviewed"] = False, True
    else:
        res_f, thr_f = dedup_dir / "resolution.parquet", dedup_dir / "review_thresholds.parquet"
        if not res_f.is_file() or not thr_f.is_file():
            raise InputError(f"{dedup_dir}: no resolution.parquet / review_thresholds.parquet; run "
                             "'shiftlab dedup … --reviews REVIEWS.csv --out' into it")
        keep = pd.read_parquet(res_f).set_index("id")["keep"]
        thr = pd.read_parquet(thr_f)
        cands["near_duplicate"] = ~cands["id"].map(keep).fillna(True).astype(bool)
        above = pd.Series(True, index=thr.index)
        for metric in thr.columns:
            target = DEFAULT_REVIEW_TARGETS.get(metric, DEFAULT_REVIEW_TARGETS.get("fc7"))
            above &= thr[metric] > target
        cands["reviewed"] = cands["id"].map(above).fillna(False).astype(bool)
    val = _frequency_table(read_dataset(reference_val, workspace=_ws()), "the validation set") \
        if reference_val else None
    if letter == "b" and val is None:
        raise InputError("the matched strategy needs --reference-val with selection frequencies")
    name_ds = dataset or p.dataset or p.name
    if parent is not None:
        if not parent.is_file():
            raise InputError(f"{parent}: no such revision file")
        pd_, pv, _ = rv.parse_revision_name(parent.name[:-5] if parent.name.endswith(".json") else parent.stem)
        if pd_ != name_ds or pv != letter:
            raise InputError(f"parent {parent.name} is a revision of {pd_}-{pv}, not of {name_ds}-{letter}")
        name = rv.next_revision_name(f"{pd_}-{pv}-{rv.parse_revision_name(parent.stem)[2]}")
    else:
        name = rv.revision_name(name_ds, letter, 0)
    class_thresholds = rv.read_class_thresholds(thresholds) if thresholds else None
    rev = rv.make_revision(name, cands, seed=seed, validation=val, parent=parent, class_names=p.vocabulary,
                           per_class=per_class, class_thresholds=class_thresholds,
                           allow_upward_sampling=allow_upward, time_string=time_string, username=username)
    folder = out_dir or _ws().root / "revisions"
    folder.mkdir(parents=True, exist_ok=True)
    path = rev.write(folder / rev.filename)
    order = [i for i, _ in rev.doc["image_filenames"]]
    rows = pd.Series(range(len(p)), index=p.table["id"]).loc[order].to_numpy()
    m = p.subset(rows, name=name)
    from dataclasses import replace

    m = replace(m, dataset=name_ds, variant=letter, revision=name.rsplit("-", 1)[1],
                parent=(parent.stem if parent else p.name), seed=seed,
                parameters={**m.parameters, "sampling": {k: v for k, v in rev.doc.items() if k != "image_filenames"}})
    register_dataset(m, name, _ws())
    res = rev.result
    validity = "valid" if rev.is_valid else f"NOT valid: {len(res.short_classes)} short classes"
    out.print(f"{name}: {len(order)} images in {len(res.classes)} classes ({validity}); "
              f"{sum(len(v) for v in res.carried_over.values())} carried over from the parent; "
              f"{int(cands.near_duplicate.sum())} near-duplicates and {int((~cands.reviewed).sum())} unreviewed "
              f"candidates were not eligible; wrote {path} and registered dataset {name}")


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

        specs = [m.strip() for m in models.split(",") if m.strip()]
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
