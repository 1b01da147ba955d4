"""``shiftlab models``: model spec schemes (built-in and plugged in) and the workspace's model names."""

from __future__ import annotations

import typer

from shiftlab.cli.common import out, table, ws


def register(app: typer.Typer) -> None:
    models_app = typer.Typer(help="Model spec schemes and registered model names.", invoke_without_command=True)
    app.add_typer(models_app, name="models")
    models_app.callback()(models_list)
    models_app.command("add")(models_add)
    models_app.command("list")(models_zoo_list)
    models_app.command("info")(models_info)


def models_list(ctx: typer.Context):
    """List model spec schemes (with whether they work here) and registered names."""
    if ctx.invoked_subcommand is not None:
        return
    from shiftlab.registry import model_aliases

    models_zoo_list(None, None, False)
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


def models_zoo_list(
    zoo: str = typer.Argument(None, help="torchvision or timm; none: the spec schemes"),
    filter: str = typer.Option(None, "--filter", help="a shell pattern on the names, e.g. 'resnet*' or '*vit*'"),
    pretrained: bool = typer.Option(False, "--pretrained", help="timm: only names with released weights"),
):
    """List the model names a zoo knows (``torchvision:NAME`` / ``timm:NAME`` specs), or the spec schemes."""
    from fnmatch import fnmatch

    from shiftlab.errors import InputError, MissingDependencyError
    from shiftlab.models.specs import schemes

    if zoo is None:
        t = table("model specs", ["scheme", "example", "available here", "what"])
        for s in schemes().values():
            missing = s.missing()
            t.add_row(f"{s.name}:", s.example, "yes" if not missing else f"no: {s.install}", s.doc)
        out.print(t)
        return
    if zoo not in ("torchvision", "timm"):
        raise InputError(f"models list lists torchvision or timm, not {zoo!r}")
    missing = schemes()[zoo].missing()
    if missing:
        raise MissingDependencyError(f"{zoo} is not importable here; install it with: {schemes()[zoo].install}")
    if zoo == "torchvision":
        import torchvision

        from shiftlab.models.adapters.torchvision_zoo import classification_models

        names = [n for n in classification_models() if filter is None or fnmatch(n, filter)]
        t = table(f"torchvision classification models ({len(names)})", ["spec", "weights (?weights=…)"])
        for n in names:
            try:
                ws_ = ", ".join(w.name for w in torchvision.models.get_model_weights(n))
            except (ValueError, KeyError):
                ws_ = "none released"
            t.add_row(f"torchvision:{n}", ws_)
        out.print(t)
    else:
        import timm

        names = timm.list_models(filter or "", pretrained=pretrained)
        out.print("\n".join(f"timm:{n}" for n in names))
        out.print(f"{len(names)} timm model names" + (" with released weights" if pretrained else "")
                  + (f" matching {filter!r}" if filter else ""))


def models_info(spec: str = typer.Argument(..., help="a model spec or a registered name")):
    """A model's preprocessing recipe, feature size, classes and where its class names come from.

    The model is built (weights loaded) but not run on data.
    """
    from shiftlab.models.adapters.predictions import PrecomputedPredictions
    from shiftlab.models.specs import load_model, resolve_alias

    full = resolve_alias(spec, ws())
    model = load_model(full, workspace=ws())
    t = table(f"model {spec}", ["field", "value"])
    t.add_row("spec", full)
    if isinstance(model, PrecomputedPredictions):
        t.add_row("kind", f"precomputed {model.kind}")
        t.add_row("rows", str(len(model.values)))
        what = "class indices, top-k" if model.kind == "topk" else "classes"
        t.add_row("columns", f"{model.values.shape[1]} ({what})")
        t.add_row("image ids", "in the file" if model.ids is not None else "none: rows in the manifest's order")
        out.print(t)
        return
    w, _ = model.last_layer()
    r = model.recipe
    t.add_row("store key", model.key)
    t.add_row("type", type(model).__name__)
    t.add_row("recipe", (f"resize {r.resize}{' (both sides)' if r.square else ''}, " if r.resize else "no resize, ")
              + (f"centre crop {r.crop}, " if r.crop else "") + f"{r.interpolation}, {r.mode}")
    t.add_row("mean / std", f"{', '.join(f'{m:g}' for m in r.mean)} / {', '.join(f'{v:g}' for v in r.std)}")
    t.add_row("input", "×".join(str(v) for v in r.input_shape))
    t.add_row("features", f"{int(w.shape[1])} (the input of the last linear layer)")
    t.add_row("classes", str(int(w.shape[0])))
    t.add_row("class names", model.vocabulary)
    module = getattr(model, "module", None)
    if module is not None and hasattr(module, "parameters"):
        t.add_row("parameters", f"{sum(p.numel() for p in module.parameters()):,}")
    out.print(t)
