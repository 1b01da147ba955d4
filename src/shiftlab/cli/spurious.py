"""``shiftlab spurious``: which spurious features a model relies on (class-wise neural PCA, SPECS S3)."""

from __future__ import annotations

import typer

spurious_app = typer.Typer(help="Spurious features: neural PCA components, the spurious score, SpuFix.",
                           no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(spurious_app, name="spurious")
