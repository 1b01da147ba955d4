"""``shiftlab datasets``: the datasets registered in the workspace."""

from __future__ import annotations

from pathlib import Path

import typer

from shiftlab.cli.common import layout_for_path, out, table, vocabulary, ws


def register(app: typer.Typer) -> None:
    datasets_app = typer.Typer(help="Datasets registered in the workspace.", invoke_without_command=True)
    app.add_typer(datasets_app, name="datasets")
    datasets_app.callback()(datasets_list)
    datasets_app.command("add")(datasets_add)


def datasets_list(ctx: typer.Context):
    """List registered datasets (``datasets add`` registers one)."""
    if ctx.invoked_subcommand is not None:
        return
    from shiftlab.data.manifest import Manifest
    from shiftlab.registry import dataset_path, list_datasets

    names = list_datasets(ws())
    if not names:
        out.print(f"no datasets registered in {ws().root}; add one with 'shiftlab datasets add NAME PATH'")
        return
    t = table(f"datasets in {ws().root}", ["name", "images", "classes", "vocabulary", "layout", "root", "hash"])
    for n in names:
        m = Manifest.load(dataset_path(n, ws()))
        t.add_row(n, str(len(m)), str(m.table["label"].nunique()), m.vocabulary.name,
                  str(m.parameters.get("layout", "")), m.root or "(labels only)", m.content_hash[:12])
    out.print(t)


def datasets_add(
    name: str = typer.Argument(..., help="Name to register under."),
    path: Path = typer.Argument(..., help="Folder, revision JSON, CSV or manifest."),
    layout: str | None = typer.Option(None, help="imagefolder | imagenetv2 | revision | csv | manifest."),
    root: Path | None = typer.Option(None, help="Image root for a revision JSON or CSV."),
    vocab: str | None = typer.Option(None, "--vocabulary", help="imagenet-1k, digits, or a JSON list of class "
                                                                "names."),
):
    """Read a dataset into a manifest and register it under NAME."""
    from shiftlab.data.layouts import read_dataset
    from shiftlab.registry import check_name, register_dataset

    check_name(name)
    m = read_dataset(str(path), layout=layout or layout_for_path(path), workspace=ws(),
                     root=str(root) if root else None, vocabulary=vocabulary(vocab))
    p = register_dataset(m, name, ws())
    out.print(f"registered {name}: {len(m)} images, {m.table['label'].nunique()} classes "
              f"({m.vocabulary.name}) → {p}")
