"""``shiftlab eval``: accuracy of models on a test set, and with ``--labels`` under multi-labels and ReaL."""

from __future__ import annotations

from pathlib import Path

import typer

from shiftlab.cli.common import (
    check_out_file,
    executor_option,
    executor_scope,
    out,
    pct,
    ray_address_option,
    split_specs,
    table,
    vocabulary,
    ws,
)


def register(app: typer.Typer) -> None:
    app.command("eval")(eval_cmd)


def eval_cmd(
    dataset: str = typer.Option(..., "--dataset", "-d", help="Registered dataset name or a path."),
    models: str = typer.Option(..., "--models", "-m", help="Comma-separated model specs or names."),
    layout: str | None = typer.Option(None, help="imagefolder | imagenetv2 | revision | csv | manifest."),
    root: Path | None = typer.Option(None, help="Image root for a revision JSON or CSV."),
    vocab: str | None = typer.Option(None, "--vocabulary", help="Class names of folders/CSV labels: imagenet-1k, "
                                                                "digits, or a JSON list of names [default: detected]."),
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
    executor: str = executor_option(),
    ray_address: str | None = ray_address_option(),
):
    """Top-1 / top-5 accuracy (95% Clopper–Pearson intervals) of models on a test set."""
    from shiftlab.analyze.evaluate import evaluate
    from shiftlab.data.recipes import recipe_overrides

    overrides = recipe_overrides(recipe, resize=resize, crop=crop, interpolation=interpolation, mean=mean, std=std)
    if out_file is not None:  # before the work: a folder in the way would fail after the evaluation
        check_out_file(out_file, "--out", out_file.with_suffix(".parquet"),
                       *([_labels_file(out_file)] if labels else []))
    specs = split_specs(models)
    with executor_scope(executor, ray_address):
        res = evaluate(dataset, specs, workspace=ws(), layout=layout, root=str(root) if root else None,
                       vocabulary=vocabulary(vocab), device=device, batch_size=batch_size,
                       recipe_overrides=overrides, workers=workers)
    cols = ["model", "images", "bad images", "top-1 % [95% CI]", "top-5 %"]
    t = table(f"{res.manifest.name}: {len(res.manifest)} images, {len(res.manifest.vocabulary)} classes",
              cols, right=tuple(cols[1:]))
    for r in res.table.itertuples():
        t.add_row(r.model, str(r.n_images), str(r.n_bad),
                  f"{pct(r.top1)} [{pct(r.top1_low)}, {pct(r.top1_high)}]", pct(r.top5))
    out.print(t)
    bad = res.bad_images()
    if len(bad):
        counts = bad["reason"].str.replace(r":.*", "", regex=True).value_counts()
        out.print(f"{len(bad)} image(s) could not be decoded and were excluded: "
                  + ", ".join(f"{n} {r}" for r, n in counts.items()))
    if out_file is not None:
        csv, pq = res.write(out_file)
        out.print(f"wrote {csv} and {pq}")
    if labels:
        _label_metrics(res, labels, allow_missing_classes, out_file)


def _label_metrics(res, labels: list[str], allow_missing_classes: bool, out_file: Path | None) -> None:
    """``eval --labels``: multi-label accuracy, ImageNet-M and ReaL of the evaluated models."""
    import pandas as pd

    from shiftlab.analyze.multilabel import multilabel_summary
    from shiftlab.data.labelfiles import apply_label_sources
    from shiftlab.fsutil import atomic_write_bytes

    m = apply_label_sources(res.manifest, labels)
    df = multilabel_summary(m, res.predictions, allow_missing_classes=allow_missing_classes)
    groups = [("ml_accuracy", "multi-label %"), ("imagenet_m_correct", "ImageNet-M"), ("real_top1", "ReaL top-1 %"),
              ("real_top5", "ReaL top-5 %")]
    shown = [(c, h) for c, h in groups if df[c].notna().any()]
    t = table(f"{m.name}: accuracy under the extra labels", ["model", "top-1 %", *[h for _, h in shown]],
              right=("top-1 %", *[h for _, h in shown]))
    for r in df.itertuples():
        cells = []
        for c, _ in shown:
            v = getattr(r, c)
            cells.append(f"{int(v)}/{int(r.imagenet_m_size)}" if c == "imagenet_m_correct" else pct(v))
        t.add_row(str(r.model), pct(r.top1), *cells)
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
        f = _labels_file(out_file)
        atomic_write_bytes(f, df.to_csv(index=False).encode())
        out.print(f"wrote {f}")


def _labels_file(out_file: Path) -> Path:
    """Where ``eval --labels --out X.csv`` writes the extra-label table: ``X-labels.csv`` beside it."""
    return Path(out_file).with_name(Path(out_file).stem + "-labels.csv")
