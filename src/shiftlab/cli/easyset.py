"""``shiftlab easyset``: a model-specific curated set (SPECS S5, SCOOTER's ImageNet S-R50-N): rank, review, build,
statistics, and the published notes audited."""

from __future__ import annotations

from pathlib import Path

import typer

from shiftlab.cli.common import check_out_folder, out, split_specs, table, ws
from shiftlab.errors import InputError

easyset_app = typer.Typer(help="A model-specific curated set of clean images (ImageNet S-R50-N).",
                          no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(easyset_app, name="easyset")


def _stats_tables(stats, published: dict | None = None) -> None:
    t = table("easy-set statistics (from the records; the partitions add up)", ["figure", "count"], right=("count",))
    for r in stats.table.itertuples():
        t.add_row(r.figure, str(r.count))
    out.print(t)
    r = table("classes per reason", ["reason", "removal", "removal or crop"], right=("removal", "removal or crop"))
    for x in stats.reasons.itertuples():
        r.add_row(x.reason, str(x.removal_classes), str(x.intervention_classes))
    out.print(r)


@easyset_app.command("rank")
def rank_cmd(
    dataset: str = typer.Option(..., "--dataset", "-d", help="A registered dataset or a path (ImageNet val, …)."),
    ensemble: str = typer.Option(..., "--ensemble", help="Model specs, comma-separated (any adapter, predictions: "
                                                         "included); each is ranked."),
    target: str = typer.Option(..., "--target", help="The model the set is for (one of --ensemble, or added)."),
    single_label: str | None = typer.Option(None, "--single-label", help="real:FILE: keep images with exactly one "
                                                                         "ReaL label and use it as the label."),
    top: int = typer.Option(5, "--top", min=1, help="Images per class and model."),
    agreement: str = typer.Option("own", "--agreement", help="own (each model's own right images: reproduces "
                                                            "safebets.json) | ensemble (every member right)."),
    tie: str = typer.Option("name", "--tie", help="name (reproduces) | margin (then name)."),
    min_class_images: int = typer.Option(5, "--min-class-images", min=1, help="Drop classes with fewer images."),
    n_extras: int = typer.Option(5, "--extras", min=0, help="Extras per class offered in review."),
    out_dir: Path | None = typer.Option(None, "--out", help="Folder for safebets.json, candidates, the review queue "
                                                            "(default: <workspace>/easyset/<dataset>)."),
    device: str = typer.Option("auto", help="auto | cpu | cuda[:N]."),
    batch_size: int = typer.Option(64, "--batch-size", min=1),
):
    """Rank each model's correctly classified images per class by softmax confidence (SPECS S5)."""
    from shiftlab.curate.easyset.ranking import absent_classes
    from shiftlab.curate.easyset.select import rank_dataset, write_ranking_folder
    from shiftlab.data.layouts import read_dataset
    from shiftlab.report.text import file_stem

    if out_dir is not None:
        check_out_folder(out_dir, "--out")
    m = read_dataset(dataset, workspace=ws())
    r = rank_dataset(m, split_specs(ensemble), target, single_label=single_label, top=top,
                     min_class_images=min_class_images, agreement=agreement, tie=tie, workspace=ws(), device=device,
                     batch_size=batch_size)
    folder = out_dir or ws().root / "easyset" / file_stem(m.name)
    written = write_ranking_folder(r, folder, n_extras=n_extras)
    _ranking_summary(r.ranking, len(m.vocabulary), absent_classes)
    out.print(f"{r.n_filtered:,} of {r.n_images:,} images pass the filter"
              + (f"; classes dropped (fewer than {min_class_images} images): {r.dropped_classes}"
                 if r.dropped_classes else ""))
    out.print(f"wrote {len(written)} files under {folder}; next: shiftlab easyset review-task --from {folder}")


def _ranking_summary(ranking: dict, n_classes: int, absent_classes) -> None:
    t = table("ranking", ["model", "classes", "images", "absent classes"], right=("classes", "images"))
    for mname, classes in ranking.items():
        gone = absent_classes(ranking, mname, n_classes)
        t.add_row(mname, str(len(classes)), str(sum(len(v) for v in classes.values())),
                  ", ".join(map(str, gone)) if len(gone) <= 20 else f"{len(gone)} classes")
    out.print(t)


@easyset_app.command("show")
def show_cmd(ranking: Path = typer.Argument(..., help="A safebets.json-shaped ranking file."),
             n_classes: int = typer.Option(1000, "--classes", help="Size of the class vocabulary.")):
    """Load a ranking file and say which classes each model lacks."""
    from shiftlab.curate.easyset.ranking import absent_classes, read_ranking

    _ranking_summary(read_ranking(ranking), n_classes, absent_classes)


@easyset_app.command("review-task")
def review_task_cmd(
    source: Path = typer.Option(..., "--from", help="The folder 'easyset rank' wrote."),
    name: str | None = typer.Option(None, "--name", help="Task name (default: easyset-<dataset>)."),
    replace: bool = typer.Option(False, "--replace", help="Overwrite a task of that name."),
    per_class: bool = typer.Option(False, "--per-class", help="One task per class (<name>-c<class>) instead of one "
                                                              "task whose images go class by class."),
):
    """A review task over the ranked images and extras (keep / crop / remove, reasons, crop boxes, class exclusion)."""
    from shiftlab.cli.common import task_done
    from shiftlab.curate.easyset.select import read_ranking_folder
    from shiftlab.report.text import file_stem
    from shiftlab.review.tasks import images_task

    params, _, queue = read_ranking_folder(source)
    items = [{"id": r.id, "caption": f"class {r[1]} · " + (f"rank {r.rank} ({r.stage})" if r.stage != "extra" else
                                                            f"extra (confidence {r.confidence:.4f})")}
             for r in queue.itertuples(index=False)]
    name = name or f"easyset-{file_stem(params['dataset'])}"
    groups = [(f"{name}-c{k}", [it for it, c in zip(items, queue["class"]) if c == k])
              for k in sorted(set(queue["class"]))] if per_class else [(name, items)]
    for task_name, its in groups:
        task = images_task(params["dataset"], "easyset", name=task_name, items=its, workspace=ws(), replace=replace)
    if per_class:
        out.print(f"{len(groups)} review tasks {name}-c<class>; 'easyset build --task {name}' reads them all")
    task_done(task, len(items) if not per_class else len(groups[-1][1]), "images")


def _records(source: Path, task: str):
    import pandas as pd

    from shiftlab.curate.easyset.decisions import decision_records
    from shiftlab.curate.easyset.select import read_ranking_folder
    from shiftlab.review.log import ReviewLog, read_decisions
    from shiftlab.review.tasks import log_path

    params, cand, queue = read_ranking_folder(source)
    if not log_path(ws()).is_file():
        raise InputError(f"no review log in {ws().root}: decide the task {task!r} first (shiftlab review serve)")
    with ReviewLog(log_path(ws())) as log:
        # the task, or its per-class tasks (review-task --per-class: <task>-c<class>)
        names = [t for t in log.tasks() if t == task or (t.startswith(f"{task}-c") and t[len(task) + 2:].isdigit())]
        frames = [read_decisions(log, t) for t in names]
    decisions = pd.concat(frames, ignore_index=True) if frames else read_decisions(log_path(ws()), task)
    return params, cand, queue, decision_records(decisions, queue, params["final_size"])


@easyset_app.command("stats")
def stats_cmd(source: Path = typer.Option(..., "--from", help="The folder 'easyset rank' wrote."),
              task: str = typer.Option(..., "--task", help="The review task holding the decisions.")):
    """The reconciled statistics of the decisions so far."""
    from shiftlab.curate.easyset.stats import easyset_statistics

    params, _, queue, recs = _records(source, task)
    ranked = {int(k): list(t.sort_values("rank")["id"]) for k, t in queue[queue["stage"] != "extra"].groupby("class")}
    _stats_tables(easyset_statistics(recs, ranked, sorted(set(queue["class"])), params["final_size"], params["top"]))


@easyset_app.command("build")
def build_cmd(
    source: Path = typer.Option(..., "--from", help="The folder 'easyset rank' wrote."),
    task: str = typer.Option(..., "--task", help="The review task holding the decisions."),
    dest: Path = typer.Option(..., "--out", help="A new folder for the set."),
    device: str = typer.Option("auto", help="auto | cpu | cuda[:N]."),
    batch_size: int = typer.Option(64, "--batch-size", min=1),
):
    """Fold the decisions into the final set (crops applied to copies), then the post-edit check: the target must
    classify every final image correctly, or the export is refused (exit 2) and nothing is written."""
    from shiftlab.curate.easyset.build import build_easyset, confidences_of
    from shiftlab.data.layouts import read_dataset

    check_out_folder(dest, "--out")
    params, cand, queue, recs = _records(source, task)
    src = read_dataset(params["dataset"], workspace=ws())
    b = build_easyset(src, recs, queue, params["target"], dest, confidences=confidences_of(cand),
                      final_size=params["final_size"], top=params["top"], workspace=ws(), device=device,
                      batch_size=batch_size)
    _stats_tables(b.stats)
    out.print(f"post-edit check: {params['target_name']} classifies all {len(b.check)} final images correctly")
    if b.stats.reasons["removal_classes"].sum():
        from shiftlab.report.figures.easyset import reasons_chart

        reasons_chart(b.stats.reasons).savefig(dest / "reasons.png", dpi=120)
    out.print(f"wrote {len(b.manifest)} images, manifest.parquet and provenance.csv under {dest}")


@easyset_app.command("import-notes")
def import_notes_cmd(
    notes: Path = typer.Argument(..., help="SCOOTER's notes.txt."),
    ranking: Path = typer.Option(..., "--ranking", help="The safebets.json the notes were written against."),
    target: str | None = typer.Option(None, "--target", help="The ranking's target model (default: its first)."),
    removed: Path | None = typer.Option(None, "--removed-list", help="removed_or_modified.txt, cross-checked."),
    out_dir: Path | None = typer.Option(None, "--out", help="Folder for records.csv, unmapped.csv, comparison.csv "
                                                            "and reasons.png."),
):
    """The published notes → structured records (a tested rule table); the unmapped statements; the statistics
    beside the published ones, each difference explained."""
    from shiftlab.curate.easyset.audit import compare, cross_check
    from shiftlab.curate.easyset.notes import import_notes
    from shiftlab.curate.easyset.ranking import read_ranking
    from shiftlab.curate.easyset.stats import easyset_statistics

    if out_dir is not None:
        check_out_folder(out_dir, "--out")
    try:
        text = notes.read_text(encoding="utf-8")
        removed_text = removed.read_text(encoding="utf-8") if removed else None
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"cannot read {e.filename or notes}: {getattr(e, 'strerror', None) or e}") from None
    r = read_ranking(ranking)
    target = target or next(iter(r))
    if target not in r:
        raise InputError(f"--target {target!r}: the ranking has {', '.join(r)}")
    ranked = {int(k): [f for f, _ in v] for k, v in r[target].items()}
    ni = import_notes(text, ranked)
    stats = easyset_statistics(ni.records, ranked, range(1000))
    n_rec = ni.records["action"].value_counts()
    out.print(f"{len(ni.classes)} class notes → {len(ni.records)} records ("
              + ", ".join(f"{a} {n_rec.get(a, 0)}" for a in ("remove", "crop", "add", "exclude")) + ")")
    u = table(f"{len(ni.unmapped)} statement(s) the rules could not map", ["class", "statement", "why"])
    for x in ni.unmapped.itertuples():
        u.add_row(str(x[1]), x.statement, x.why)
    out.print(u)
    assumed = ni.records[ni.records["rule"] == "valid-count"]
    if len(assumed):
        out.print(f"assumed: {len(assumed)} removal(s) in classes {', '.join(map(str, sorted(set(assumed['class']))))}"
                  " whose heading gives a count of valid images but names none (the lowest-ranked were taken)")
    for c in ni.conflicts.itertuples():
        out.print(f"conflict: class {c[1]} names {c.image} as {' and '.join(c.actions)} (the later one is in force)")
    cmp = compare(ni, stats, text, ranked)
    t = table("statistics: published, the notebook's substring rules, the records", ["figure", "published",
              "notebook rule", "records", "difference explained"], right=("published", "notebook rule", "records"))
    for x in cmp.itertuples():
        t.add_row(x.figure, str(x.published), "—" if x.notebook_rule != x.notebook_rule or x.notebook_rule is None
                  else str(int(x.notebook_rule)), str(x.records), x.explanation)
    out.print(t)
    rs = table("classes per reason (records)", ["reason", "removal", "removal or crop"],
               right=("removal", "removal or crop"))
    for x in stats.reasons.itertuples():
        rs.add_row(x.reason, str(x.removal_classes), str(x.intervention_classes))
    out.print(rs)
    if removed_text is not None:
        cc = cross_check(removed_text, text)
        out.print(f"{removed.name}: {cc.n_lines} lines, {cc.n_unique} unique, {cc.without_extension} without "
                  f"'.JPEG', malformed: {', '.join(cc.malformed) or 'none'}")
        out.print(f"  in the file, not in the notes: {', '.join(cc.only_in_file) or 'none'}")
        out.print(f"  in the notes, not in the file: {', '.join(cc.only_in_notes) or 'none'}")
    if out_dir is not None:
        from shiftlab.report.figures.easyset import reasons_chart

        out_dir.mkdir(parents=True, exist_ok=True)
        ni.records.to_csv(out_dir / "records.csv", index=False)
        ni.unmapped.to_csv(out_dir / "unmapped.csv", index=False)
        cmp.to_csv(out_dir / "comparison.csv", index=False)
        reasons_chart(stats.reasons).savefig(out_dir / "reasons.png", dpi=120)
        out.print(f"wrote records.csv, unmapped.csv, comparison.csv and reasons.png under {out_dir}")
