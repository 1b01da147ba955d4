"""``shiftlab world``, ``zoo`` and ``demo``: the embedded digits world, its model zoo and the demo report."""

from __future__ import annotations

import typer

from shiftlab.cli.common import out, split_names, table, ws


def register(app: typer.Typer) -> None:
    world_app = typer.Typer(help="The embedded digits world: the default data and ground truth.",
                            no_args_is_help=True)
    zoo_app = typer.Typer(help="The embedded model zoo of the digits world (specs world:<name>).",
                          no_args_is_help=True)
    app.add_typer(world_app, name="world")
    app.add_typer(zoo_app, name="zoo")
    world_app.command("build")(world_build)
    zoo_app.command("train")(zoo_train)
    app.command()(demo)


def world_build(seed: int = typer.Option(0, help="Every random choice of the world derives from it."),
                force: bool = typer.Option(False, help="Rebuild even if a world with this seed exists.")):
    """Build the digits world (deterministic from the seed) and register its splits as datasets."""
    from shiftlab.world import WorldConfig, build_world

    w = build_world(ws(), WorldConfig(seed=seed), force=force)
    truth = w.truth()
    t = table(f"digits world (seed {w.seed}) in {w.root}", ["dataset", "images"], right=("images",))
    for split, n in w.info["counts"].items():
        t.add_row(f"world-{split}", str(n))
    out.print(t)
    out.print(f"planted: {len(truth['duplicates'])} near-duplicates, {len(truth['watermarks'])} watermarks, "
              f"{len(truth['label_errors'])} label errors in test, spurious cues on classes "
              f"{', '.join(truth['spurious']['classes'])}, {len(truth['wrong_class_candidates'])} wrong-class "
              f"candidates; ground truth in {w.root / 'truth'}, crowd votes in {w.hits_results}")


def zoo_train(names: str | None = typer.Option(None, help="Comma-separated zoo names [default: all].")):
    """Train the zoo models that are not cached yet (on world-train) and list them all."""
    from shiftlab.world import load_world
    from shiftlab.world.zoo import summary, train_zoo

    world = load_world(ws())
    df = summary(train_zoo(world.manifest("train"), ws(), names=split_names(names) if names else None))
    t = table("digits-world zoo", ["spec", "family", "training", "params", "train s", "train acc", "cached"],
              right=("params", "train s", "train acc"))
    for r in df.itertuples():
        t.add_row(f"world:{r.name}", r.family, r.training, f"{r.params:,}", f"{r.seconds:.1f}",
                  f"{r.final_acc:.1%}", "yes" if r.cached else "trained now")
    out.print(t)


def demo(seed: int = typer.Option(0, help="Seed of the world.")):
    """Build the embedded digits world, train its zoo, evaluate it and write the demo report."""
    from shiftlab.progress import seconds_since_start
    from shiftlab.world.demo import run_demo

    res = run_demo(ws(), seed=seed)
    res.report.to_console(out)
    # from the process's start, imports included: the time a user waits
    out.print(f"report: {res.path}  ({seconds_since_start():.0f} s)")
