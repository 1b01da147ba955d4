"""``shiftlab easyset``: a model-specific curated set (SPECS S5, SCOOTER's ImageNet S-R50-N): rank, review, build,
statistics, and the published notes audited."""

from __future__ import annotations

import typer

easyset_app = typer.Typer(help="A model-specific curated set of clean images (ImageNet S-R50-N).",
                          no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(easyset_app, name="easyset")
