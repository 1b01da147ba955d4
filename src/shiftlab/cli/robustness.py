"""``shiftlab robustness``: effective robustness of models from accuracies on two test sets (SPECS S1.7)."""

from __future__ import annotations

from pathlib import Path

import typer

from shiftlab.cli.common import out, split_names, split_specs, table, ws


def register(app: typer.Typer) -> None:
    app.command()(robustness)


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
    strict: bool = typer.Option(False, help="A fit that means little (under 3 reference models, a degenerate "
                                            "spread) is an error instead of a warning."),
):
    """Effective robustness: fit the line of shifted vs in-distribution accuracy over a reference group."""
    import pandas as pd

    from shiftlab.analyze.robustness import robustness_study

    r = robustness_study(id_set, ood_set, models=split_specs(models) if models is not None else None,
                         results=results, types=types, reference=split_names(reference) if reference else None,
                         baseline=baseline, scale=scale, n_boot=n_boot, seed=seed, strict=strict,
                         workspace=ws())
    er, fit = r.table, r.fit
    shown = er.sort_values("effective_robustness", ascending=False)
    right = ("id %", "shifted %", "predicted %", "eff. robustness (points) [95%]", "relative")
    t = table(f"effective robustness ({ood_set} vs {id_set}; fit on {int(er.in_reference.sum())} models)",
              ["model", "type", *right], right=right)
    for row in shown.head(40).itertuples():
        kind = getattr(row, "type", None)
        t.add_row(str(row.model), "" if pd.isna(kind) else str(kind), f"{100 * row.id_acc:.2f}",
                  f"{100 * row.ood_acc:.2f}", f"{100 * row.predicted_ood:.2f}",
                  f"{100 * row.effective_robustness:+.2f} [{100 * row.effective_robustness_low:+.2f}, "
                  f"{100 * row.effective_robustness_high:+.2f}]",
                  "—" if row.relative_robustness != row.relative_robustness
                  else f"{100 * row.relative_robustness:+.2f}")
    if r.warnings:  # under the rows, where the eye goes from the numbers it qualifies
        t.caption = "\n".join(f"warning: {w}" for w in r.warnings)
        t.caption_style, t.caption_justify = "bold yellow", "left"
    out.print(t)
    if len(shown) > 40:
        out.print(f"(first 40 of {len(shown)} models by effective robustness; all of them in the CSV)")
    out.print(f"fit in {scale} space: slope {fit.slope:.3f}, intercept {fit.intercept:.3f} over {fit.n} models")
    csv, page = r.write(out_dir or ws().reports / f"robustness-{Path(id_set).stem}-{Path(ood_set).stem}")
    out.print(f"wrote {csv} and {page}")
