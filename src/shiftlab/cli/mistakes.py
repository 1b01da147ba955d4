"""Which errors are real (SPECS S2): ``mistakes``, ``confusions`` and ``label-issues``."""

from __future__ import annotations

from pathlib import Path

import typer

from shiftlab.cli.common import (
    executor_option,
    executor_scope,
    out,
    pct,
    ray_address_option,
    split_specs,
    table,
    task_done,
    ws,
)
from shiftlab.errors import InputError


def register(app: typer.Typer) -> None:
    app.command()(mistakes)
    app.command()(confusions)
    app.command("label-issues")(label_issues_cmd)


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
    executor: str = executor_option(),
    ray_address: str | None = ray_address_option(),
):
    """Every top-1 error of a model with a suggested mistake category and its evidence (SPECS S2)."""
    if reviewed is not None and out_file is None:
        raise InputError("--reviewed writes the final records: give --out FILE_mistakes.json too")
    from shiftlab.analyze import mistakes as mk
    from shiftlab.fsutil import atomic_write_json
    from shiftlab.review.export import task_decisions
    from shiftlab.review.tasks import images_task

    with executor_scope(executor, ray_address):  # predictions, features and the neighbour search
        res = mk.mistakes_study(dataset, model, labels=labels, train=train, hierarchy=hierarchy, cues=cues,
                                feature_model=feature_model, k=k, min_neighbours=min_neighbours, max_hops=max_hops,
                                device=device, batch_size=batch_size, workspace=ws())
    t = table(f"{res.model} on {res.dataset}: {res.n_errors} top-1 errors of {res.n_scored} scored images "
              f"(top-1 {pct(res.top1)} %)", ["category", "errors", "share %"], right=("errors", "share %"))
    counts = res.table["category"].value_counts()
    for c, f in res.fractions().items():
        t.add_row(c, str(int(counts.get(c, 0))), pct(f))
    out.print(t)
    skipped = [c for c in ("multilabels", "hierarchy", "neighbours", "cues") if c not in res.checks]
    if skipped:
        out.print(f"checks skipped for lack of input: {', '.join(skipped)}")
    e = table("errors (first 30)", ["id", "label → prediction", "category", "evidence"])
    for r in res.table.head(30).itertuples():
        e.add_row(str(r.id), f"{r.label_name} → {r.prediction_name}", r.category, r.evidence)
    out.print(e)
    if reviewed is not None:
        final = mk.apply_review_decisions(res.table, task_decisions(reviewed, ws()))
        p = mk.write_mistakes(final, out_file)
        n_rev = int(final["reviewed"].sum())
        out.print(f"wrote {p}: {len(final)} errors, {n_rev} decided in review task {reviewed!r}, "
                  f"{len(final) - n_rev} keep the automatic suggestion")
    elif out_file is not None:
        p, csv = res.write(out_file)
        out.print(f"wrote {p} ({int((res.table.category != mk.NOT_A_MISTAKE).sum())} mistakes) and "
                  f"{csv} (all {res.n_errors} errors with evidence)")
    if review_task is not None:
        t = images_task(res.dataset, mk.review_config(), name=review_task, workspace=ws(),
                        items=mk.review_queue_items(res.table, include_not_mistakes=False))
        task_done(t, len(t["items"]), "mistakes to confirm")
    if queue is not None:
        queue.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(queue, {"model": res.model, "dataset": res.dataset,
                                  "items": mk.review_queue_items(res.table)})
        out.print(f"wrote {queue}")


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
    from shiftlab.analyze.mistakes import confusion_study

    s = confusion_study(dataset, split_specs(models), labels=labels, workspace=ws())
    pairs = s.pairs
    t = table(f"{s.dataset}: {s.n_errors} top-1 errors of {len(s.models)} model(s) in {len(pairs)} class pairs",
              ["class a", "class b", "errors", "models"], right=("errors", "models"))
    for r in pairs.head(top).itertuples():
        t.add_row(f"{r.a_name} ({r.a})", f"{r.b_name} ({r.b})", str(r.count), str(r.models))
    out.print(t)
    written = s.write(out_dir or ws().reports / f"confusions-{Path(s.dataset).stem}", top)
    out.print("wrote " + ", ".join(map(str, written)))


def label_issues_cmd(
    dataset: str = typer.Option(..., "--dataset", "-d", help="Registered dataset name or a path."),
    models: str = typer.Option(..., "--models", "-m", help="Models NOT trained on these images (their mean "
                                                           "probabilities are the out-of-sample estimate)."),
    top: int = typer.Option(20, min=1, help="Rows shown."),
    out_file: Path | None = typer.Option(None, "--out", help="Write the whole ranking as CSV."),
    executor: str = executor_option(),
    ray_address: str | None = ray_address_option(),
):
    """Rank the images whose given label is most likely wrong (cleanlab's find_label_issues)."""
    from shiftlab.analyze.label_issues import label_issues
    from shiftlab.data.layouts import read_dataset

    with executor_scope(executor, ray_address):  # connected first: a missing cluster fails before any work
        m = read_dataset(dataset, workspace=ws())
        df = label_issues(m, split_specs(models), workspace=ws())
    t = table(f"{m.name}: {int(df.is_label_issue.sum())} of {len(df)} labels flagged by cleanlab",
              ["rank", "id", "given", "suggested", "p(given)", "flagged"], right=("rank", "p(given)"))
    for r in df.head(top).itertuples():
        t.add_row(str(r.rank), str(r.id), r.given_name, f"{r.suggested_name} ({r.suggested_probability:.2f})",
                  f"{r.label_quality:.3f}", "yes" if r.is_label_issue else "")
    out.print(t)
    if out_file is not None:
        out_file.parent.mkdir(parents=True, exist_ok=True)
        df.to_csv(out_file, index=False)
        out.print(f"wrote {out_file}")
