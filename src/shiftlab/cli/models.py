"""``shiftlab models``: model spec schemes (built-in and plugged in) and the workspace's model names."""

from __future__ import annotations

import typer

from shiftlab.cli.common import out, table, ws


def register(app: typer.Typer) -> None:
    models_app = typer.Typer(help="Model spec schemes and registered model names.", invoke_without_command=True)
    app.add_typer(models_app, name="models")
    models_app.callback()(models_list)
    models_app.command("add")(models_add)


def models_list(ctx: typer.Context):
    """List model spec schemes (with whether they work here) and registered names."""
    if ctx.invoked_subcommand is not None:
        return
    from shiftlab.models.specs import schemes
    from shiftlab.registry import model_aliases

    t = table("model specs", ["scheme", "example", "available here", "what"])
    for s in schemes().values():
        missing = s.missing()
        t.add_row(f"{s.name}:", s.example, "yes" if not missing else f"no: {s.install}", s.doc)
    out.print(t)
    aliases = model_aliases(ws())
    if aliases:
        a = table(f"registered names in {ws().root}", ["name", "spec"])
        for k, v in sorted(aliases.items()):
            a.add_row(k, v)
        out.print(a)


def models_add(name: str = typer.Argument(...), spec: str = typer.Argument(...)):
    """Register NAME as a short name for a model SPEC."""
    from shiftlab.models.specs import split_spec
    from shiftlab.registry import register_model

    split_spec(spec)
    register_model(name, spec, ws())
    out.print(f"registered model {name} = {spec}")
