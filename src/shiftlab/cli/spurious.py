"""``shiftlab spurious``: which spurious features a model relies on (class-wise neural PCA, SPECS S3)."""

from __future__ import annotations

from pathlib import Path

import typer

from shiftlab.cli.common import (
    executor_option,
    executor_scope,
    out,
    ray_address_option,
    split_names,
    split_specs,
    table,
    ws,
)
from shiftlab.errors import InputError

spurious_app = typer.Typer(help="Spurious features: neural PCA components, the spurious score, SpuFix.",
                           no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(spurious_app, name="spurious")


@spurious_app.command("score")
def score(
    models: str = typer.Option(..., "--models", "-m", help="Model spec(s) or name(s), comma-separated."),
    positives: str = typer.Option(..., "--positives", help="Positives: a registered dataset or a path; its "
                                                          "images labelled k are class k's positives "
                                                          "(ImageNet validation, world-test)."),
    negatives: str = typer.Option(..., "--negatives", help="Negatives: images of class k's spurious feature "
                                                          "without k. A registered dataset or a path; with "
                                                          "--class K any folder of images."),
    negatives_layout: str | None = typer.Option(None, "--negatives-layout", help="spurious-imagenet: the "
                                                "Spurious ImageNet folders (images/<…>_<class>_…_<component>/); "
                                                "or a dataset layout (imagefolder, csv, manifest, …) "
                                                "(default: a registered name, or detected)."),
    klass: int | None = typer.Option(None, "--class", help="Every negative shows this class's spurious feature "
                                                           "(a user's own spurious set)."),
    by: str | None = typer.Option(None, "--by", help="Column naming each negative's class (default: "
                                                     "spurious_class, else cue_class (the world's spurious split))."),
    classes: str | None = typer.Option(None, "--classes", help="Comma-separated class indices to score "
                                                               "(default: every class with negatives)."),
    out_dir: Path | None = typer.Option(None, "--out", help="Folder for <model>/spurious_score.{txt,csv,parquet} "
                                                            "and spurious_scores.csv (default: <workspace>/reports/"
                                                            "spurious-score-<positives>-<negatives>)."),
    device: str = typer.Option("auto", help="auto | cpu | cuda[:N]."),
    batch_size: int = typer.Option(64, "--batch-size", min=1),
    executor: str = executor_option(),
    ray_address: str | None = ray_address_option(),
):
    """The spurious score (SPECS S3): per class k, how well p_k ranks k's positives above images of k's spurious
    feature without k. AP (the published "Spurious AUC") and ROC-AUC, per class, mean and joint."""
    import warnings

    from shiftlab.analyze.spurious.score import SpuriousScoreWarning, spurious_score, write_summary
    from shiftlab.data.formats.spurious_imagenet import LAYOUT, read_spurious_folder, read_spurious_imagenet
    from shiftlab.data.layouts import read_dataset
    from shiftlab.report.text import file_stem

    specs = split_specs(models)
    wanted = None
    if classes is not None:
        try:
            wanted = [int(c) for c in split_names(classes)]
        except ValueError:
            raise InputError(f"--classes {classes!r}: give class indices, comma-separated (e.g. 2,6,9)") from None
    if klass is not None and negatives_layout == LAYOUT:
        raise InputError("the spurious-imagenet layout names each folder's class; drop --class")
    if out_dir is not None and out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"--out {out_dir} is a file; give a folder")
    pos = read_dataset(positives, workspace=ws())
    if negatives_layout == LAYOUT:
        neg = read_spurious_imagenet(negatives, vocabulary=pos.vocabulary)
    elif klass is not None and negatives_layout is None and Path(negatives).is_dir():
        neg = read_spurious_folder(negatives, klass, vocabulary=pos.vocabulary)
    else:
        neg = read_dataset(negatives, layout=negatives_layout, workspace=ws(), vocabulary=pos.vocabulary)
    with warnings.catch_warnings(), executor_scope(executor, ray_address):  # warnings: said once below
        warnings.simplefilter("ignore", SpuriousScoreWarning)
        results = spurious_score(specs, pos, neg, by=by, klass=klass, classes=wanted, workspace=ws(),
                                 device=device, batch_size=batch_size)
    folder = out_dir or ws().reports / f"spurious-score-{file_stem(pos.name)}-{file_stem(neg.name)}"
    written, stems = [], set()
    for r in results:
        t = table(f"{r.model}: spurious score, {pos.name} (positives) vs {neg.name} (negatives), "
                  f"{r.n_classes} class(es)",
                  ["class", "name", "pos", "neg", "AP (Spurious AUC)", "ROC-AUC", "mean p_k pos", "mean p_k neg",
                   "frac → k pos", "frac → k neg"],
                  right=("class", "pos", "neg", "AP (Spurious AUC)", "ROC-AUC", "mean p_k pos", "mean p_k neg",
                         "frac → k pos", "frac → k neg"))
        for c in r.table.to_dict("records"):
            t.add_row(*(str(c[k]) for k in ("class", "class_name", "n_positives", "n_negatives")),
                      *(f"{c[k]:.4f}" for k in ("ap", "roc_auc", "positives_mean_prob", "negatives_mean_prob",
                                                 "positives_frac_predicted", "negatives_frac_predicted")))
        out.print(t)
        out.print(f"Mean SpuriousScore: {r.mean_ap:.3f} - Joint SpuriousScore: {r.joint_ap:.3f} (AP)")
        out.print(f"Mean ROC-AUC: {r.mean_roc_auc:.3f} - Joint ROC-AUC: {r.joint_roc_auc:.3f}")
        for w in r.warnings:
            out.print(f"[yellow]warning:[/yellow] {w}", highlight=False)
        stem, i = file_stem(r.model), 2
        while stem in stems:  # two models of one display name keep separate folders
            stem, i = f"{file_stem(r.model)}-{i}", i + 1
        stems.add(stem)
        written += r.write(folder / stem)
    if len(results) > 1:
        s = table("spurious score per model", ["model", "classes", "mean AP", "joint AP", "mean ROC-AUC",
                                               "joint ROC-AUC"],
                  right=("classes", "mean AP", "joint AP", "mean ROC-AUC", "joint ROC-AUC"))
        for r in results:
            s.add_row(r.model, str(r.n_classes), f"{r.mean_ap:.3f}", f"{r.joint_ap:.3f}", f"{r.mean_roc_auc:.3f}",
                      f"{r.joint_roc_auc:.3f}")
        out.print(s)
    written += write_summary(results, folder / "spurious_scores.csv")
    out.print(f"wrote {len(written)} files under {folder}")
