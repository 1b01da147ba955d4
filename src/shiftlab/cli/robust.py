"""``shiftlab robust``: robust and non-robust features (SPECS S4): attacks and robust accuracy, D_R / D_NR / D_det /
D_rand, the protocol study, and the MNIST perturbation-group study."""

from __future__ import annotations

import typer

robust_app = typer.Typer(help="Robust and non-robust features (Ilyas et al. 2019; the MNIST study).",
                         no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(robust_app, name="robust")
