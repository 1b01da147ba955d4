"""``shiftlab review``: serve the review app, make its tasks, export its decisions."""

from __future__ import annotations

from pathlib import Path

import typer

from shiftlab.cli.common import out, split_names, task_done, ws


def register(app: typer.Typer) -> None:
    review_app = typer.Typer(help="The review app and its decision log (near-duplicates, class browser, labelling, "
                                  "image decisions).", no_args_is_help=True)
    task_app = typer.Typer(help="Create a review task in the workspace.", no_args_is_help=True)
    app.add_typer(review_app, name="review")
    review_app.add_typer(task_app, name="task")
    review_app.command("serve")(review_serve)
    task_app.command("duplicates")(review_task_duplicates)
    task_app.command("classes")(review_task_classes)
    task_app.command("labelling")(review_task_labelling)
    task_app.command("images")(review_task_images)
    review_app.command("export")(review_export)


def review_serve(
    host: str = typer.Option("127.0.0.1", help="Interface to listen on (loopback by default)."),
    port: int = typer.Option(0, min=0, max=65535, help="Port; 0 picks a free one."),
    reviewer: str | None = typer.Option(None, help="Who is deciding [default: each browser asks on first visit]."),
):
    """Serve the review app; prints one URL carrying the access token (every route needs it)."""
    from shiftlab.review.server import serve

    serve(ws(), host=host, port=port, reviewer=reviewer)


def review_task_duplicates(
    dedup_dir: Path = typer.Option(..., "--dedup", help="Folder written by 'shiftlab dedup' (queue.csv, neighbours)."),
    query: str | None = typer.Option(None, help="Dataset the queue was built from [default: the folder's name]."),
    name: str | None = typer.Option(None, help="Task name [default: duplicates-<query>]."),
    replace: bool = typer.Option(False, "--replace", help="Replace a different task of the same name (the old "
                                                          "file is kept as a dated .bak)."),
):
    """The near-duplicate review queue: a query beside its flagged neighbours."""
    from shiftlab.review.tasks import duplicates_task

    t = duplicates_task(dedup_dir, query=query, name=name, workspace=ws(), replace=replace)
    task_done(t, len(t["items"]), "pairs to review")


def review_task_classes(
    dataset: str = typer.Option(..., help="Pool to browse (with selection frequencies when annotated)."),
    reference: str | None = typer.Option(None, help="Dataset whose images of each class are shown for comparison."),
    name: str | None = typer.Option(None, help="Task name [default: classes-<dataset>]."),
    replace: bool = typer.Option(False, "--replace", help="Replace a different task of the same name (the old "
                                                          "file is kept as a dated .bak)."),
):
    """ImageNetV2's class browser: candidates per class; blacklist with a reason."""
    from shiftlab.review.tasks import classes_task, image_dataset

    t = classes_task(dataset, reference=reference, name=name, workspace=ws(), replace=replace)
    task_done(t, image_dataset(dataset, ws()).table["label"].nunique(), "classes")


def review_task_labelling(
    batch: Path = typer.Option(..., help="HIT batch folder or batch.json ('shiftlab hits make')."),
    datasets: str = typer.Option(..., help="Comma-separated datasets holding its images (pool, validation)."),
    name: str | None = typer.Option(None, help="Task name [default: labelling-<batch folder>]."),
    replace: bool = typer.Option(False, "--replace", help="Replace a different task of the same name (the old "
                                                          "file is kept as a dated .bak)."),
):
    """Annotators' pages of a HIT batch; export them with 'review export --format mturk' for 'hits import'."""
    from shiftlab.review.tasks import labelling_task

    t = labelling_task(batch, split_names(datasets), name=name, workspace=ws(), replace=replace)
    task_done(t, len(t["items"]), "HIT pages")


def review_task_images(
    dataset: str = typer.Option(...),
    config: str = typer.Option("watermarks", help="Built-in configuration name or a JSON file {title, "
                                                  "instructions, decisions: [{name, reasons?, crop?}]}."),
    ids: Path | None = typer.Option(None, help="Queue only these: a text file of ids, one per line."),
    name: str | None = typer.Option(None, help="Task name [default: images-<dataset>]."),
    replace: bool = typer.Option(False, "--replace", help="Replace a different task of the same name (the old "
                                                          "file is kept as a dated .bak)."),
):
    """A per-image decision queue with configurable decisions, reasons and crop boxes."""
    from shiftlab.review.tasks import images_task, read_id_list

    items = [{"id": i} for i in read_id_list(ids)] if ids is not None else None
    t = images_task(dataset, config, name=name, items=items, workspace=ws(), replace=replace)
    task_done(t, len(t["items"]), "images")


def review_export(
    task: str | None = typer.Option(None, help="Task to export [default: every event of the log]."),
    fmt: str = typer.Option("jsonl", "--format", help="jsonl | parquet (all events); reviews (duplicates task: "
                                                      "the CSV of 'dedup --reviews'); mturk (labelling task: a "
                                                      "results CSV for 'hits import'); blacklist (classes task)."),
    out_path: Path = typer.Option(..., "--out", help="File to write."),
):
    """Export the decision log, or a task's decisions in the shape the next step reads."""
    from shiftlab.review.export import export_decisions

    n = export_decisions(out_path, fmt, task=task, workspace=ws())
    out.print(f"wrote {n} {'events' if fmt in ('jsonl', 'parquet') else 'rows'} to {out_path}")


